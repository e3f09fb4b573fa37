"""Speed of the differentiable renderer: ms per forward+backward and image-steps per second.

One step = project -> rasterise -> interpolate UVs and normals -> sample albedo texture -> SH
shading -> L1 loss against a target image -> backward to vertices, texture and light.

Meshes: (a) the project's demo head (~10.5k faces, generated and cached by
``flame.demo_head.ensure_demo_head``; set ``FLAMEFIT_CACHE`` to reuse a cache) with its UV
template and the mean of its ``FLAME_texture.npz`` albedo (512 x 512), seen by the orthographic
camera ``[8, 0, 0]`` so the head fills the crop as in a fit; (b) a generated 20k-face
ellipsoid with nose/brow/chin bumps and a random 256 x 256 texture. Image sizes 224 and 512;
batch sizes 1/16/64/256 (capped by ``--max-batch``); optionally also with back-face culling
(``--cull``). Every available backend on every requested device ("torch" everywhere,
"nvdiffrast" on CUDA when installed; others are reported as skipped). Each configuration
reports the median and best wall time per step and the median process CPU time per step
(which, on a shared machine, leaves out the time the process waited for a core); the load
average is saved with the results. Results are printed and saved as JSON under
``benchmarks/results/`` with the machine and the date.

Examples::

    python benchmarks/bench_renderer.py --quick
    python benchmarks/bench_renderer.py --device cuda --max-batch 256
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from flamefit.flame.demo_head import ensure_demo_head
from flamefit.flame.model_file import load_flame_model
from flamefit.flame.texture_space_io import load_texture_space
from flamefit.flame.uv_template import load_uv_template
from flamefit.renderer.cameras import OrthographicCamera
from flamefit.renderer.nvdiffrast_backend import NvdiffrastUnavailable, require_nvdiffrast
from flamefit.renderer.primitives import head_like_mesh
from flamefit.renderer.render import render_textured
from flamefit.renderer.shading import constant_light

RESULTS = Path(__file__).resolve().parent / "results"


def head_mesh():
    """The demo head: ``(vertices (V,3) model space, faces, vt, ft, texture (3,512,512) RGB in
    [0,1], orthographic scale, description)``. Fails loudly if the demo head cannot be made."""
    folder = ensure_demo_head()
    model = load_flame_model(folder / "generic_model.pkl")
    template = load_uv_template(folder / "head_template_mesh.obj")
    albedo = load_texture_space(folder / "FLAME_texture.npz")
    return (
        torch.as_tensor(model.v_template, dtype=torch.float32),
        torch.as_tensor(model.faces).long(),
        torch.as_tensor(template.vt, dtype=torch.float32),
        torch.as_tensor(template.ft).long(),
        torch.as_tensor(albedo.mean, dtype=torch.float32).permute(2, 0, 1).contiguous(),
        8.0,
        f"demo head ({model.faces.shape[0]} faces), FLAME_texture mean albedo, orthographic s=8",
    )


def synthetic_mesh(n_faces):
    v, f, vt, ft = head_like_mesh(n_faces)
    texture = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0))
    return v, f, vt, ft, texture, fit_scale(v), f"generated head-like ellipsoid ({f.shape[0]} faces)"


def fit_scale(vertices):
    """Orthographic scale that makes the mesh fill ~85% of the image height."""
    return 0.85 / float(vertices[:, 1].abs().max())


def time_steps(mesh, image_size, batch, device, backend, repeats, warmup, cull=False):
    """Median and best wall ms, median process CPU ms per step, and the coverage."""
    v, f, vt, ft, texture, scale, _ = mesh
    v = v.to(device)[None].repeat(batch, 1, 1).requires_grad_(True)
    f, vt, ft = f.to(device), vt.to(device), ft.to(device)
    cam = OrthographicCamera(torch.tensor([[scale, 0.0, 0.0]], device=device).repeat(batch, 1), (image_size, image_size))
    texture = texture.to(device)[None].repeat(batch, 1, 1, 1).requires_grad_(True)
    light = constant_light(0.8, batch, device=device)
    light[:, 3] = 0.3
    light.requires_grad_(True)
    target = torch.rand(batch, 3, image_size, image_size, device=device, generator=torch.Generator(device).manual_seed(0))

    def step():
        out = render_textured(v, cam, f, vt, ft, texture, light, backend=backend, cull_backfaces=cull)
        loss = (out.image - target).abs().mean()
        loss.backward()
        return out

    for _ in range(warmup):
        step()
    times, cpu_times = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        out = step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    coverage = float(out.alpha.mean())
    return statistics.median(times) * 1e3, min(times) * 1e3, statistics.median(cpu_times) * 1e3, coverage


def machine_description(device):
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--backends", default="torch,nvdiffrast", help="comma list; unavailable ones are skipped")
    parser.add_argument("--sizes", default="224,512", help="image sizes (square), comma list")
    parser.add_argument("--batches", default="1,16,64,256", help="batch sizes, comma list")
    parser.add_argument("--max-batch", type=int, default=None, help="skip batches above this (default: 16 on CPU, none on CUDA)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="short run: head mesh, 224 only, batch 1 and 16, 5 repeats")
    parser.add_argument("--cull", action="store_true", help="also time every configuration with cull_backfaces=True")
    parser.add_argument("--note", default="", help="free text saved with the results (e.g. 'machine shared with other jobs')")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/renderer_<device>_<date>.json)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    repeats = args.repeats
    meshes = {"head_10k": head_mesh()}
    if args.quick:
        sizes, batches, repeats = [224], [1, 16], 5
    else:
        meshes["mesh_20k"] = synthetic_mesh(20000)
    max_batch = args.max_batch if args.max_batch is not None else (16 if device.type == "cpu" else None)

    backends = []
    for name in args.backends.split(","):
        if name == "nvdiffrast":
            try:
                require_nvdiffrast(device)
            except NvdiffrastUnavailable as exc:
                print(f"skipping backend nvdiffrast: {exc}")
                continue
        backends.append(name)

    rows = []
    for mesh_name, mesh in meshes.items():
        print(f"{mesh_name}: {mesh[-1]}")
        for backend in backends:
            for size in sizes:
                for batch in batches:
                    if max_batch is not None and batch > max_batch:
                        print(f"  {backend:10s} {size}^2 batch {batch:4d}: skipped (--max-batch {max_batch})")
                        continue
                    for cull in ([False, True] if args.cull else [False]):
                        median_ms, best_ms, cpu_ms, coverage = time_steps(
                            mesh, size, batch, device, backend, repeats, warmup=2, cull=cull
                        )
                        row = {
                            "mesh": mesh_name, "mesh_description": mesh[-1], "faces": int(mesh[1].shape[0]),
                            "backend": backend, "device": str(device), "image_size": size, "batch": batch,
                            "cull_backfaces": cull,
                            "ms_per_step_median": round(median_ms, 2), "ms_per_step_best": round(best_ms, 2),
                            "cpu_ms_per_step_median": round(cpu_ms, 2),
                            "ms_per_image_median": round(median_ms / batch, 2),
                            "image_steps_per_s": round(batch / (median_ms / 1e3), 1), "coverage": round(coverage, 3),
                        }
                        rows.append(row)
                        print(f"  {backend:10s} {size}^2 batch {batch:4d}{' cull' if cull else '     '}: "
                              f"{median_ms:8.1f} ms/step (best {best_ms:.1f}, cpu {cpu_ms:.1f}), "
                              f"{row['image_steps_per_s']:8.1f} image-steps/s, coverage {coverage:.2f}")

    record = {
        "benchmark": "renderer forward+backward (rasterise+interpolate+texture+SH+L1 backward)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(device),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"renderer_{device.type}_{dt.date.today().isoformat()}{'_quick' if args.quick else ''}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
