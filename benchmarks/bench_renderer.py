"""Speed of the differentiable renderer: ms per forward+backward and image-steps per second.

One step = project -> rasterise -> interpolate UVs and normals -> sample albedo texture -> SH
shading -> L1 loss against a target image -> backward to vertices, texture and light.

Meshes: (a) head-like, ~10k faces — the project's demo head when ``flame.demo_head`` provides
it, otherwise a generated ellipsoid with nose/brow/chin bumps (10k faces); (b) 20k faces
(generated). Image sizes 224 and 512; batch sizes 1/16/64/256 (capped by ``--max-batch``).
Every available backend on every requested device ("torch" everywhere, "nvdiffrast" on CUDA
when installed; others are reported as skipped). Results are printed and saved as JSON under
``benchmarks/results/`` with the machine and the date.

Examples::

    python benchmarks/bench_renderer.py --quick
    python benchmarks/bench_renderer.py --device cuda --max-batch 256
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from renderer.cameras import OrthographicCamera
from renderer.nvdiffrast_backend import NvdiffrastUnavailable, require_nvdiffrast
from renderer.primitives import head_like_mesh
from renderer.render import render_textured
from renderer.shading import constant_light

RESULTS = Path(__file__).resolve().parent / "results"


def head_mesh():
    """``(vertices (V,3) model space, faces, vt, ft, description)`` of the ~10k-face head."""
    try:
        from flame.demo_head import ensure_demo_head  # provided by the FLAME package when built
        from flame.model_file import load_flame_model
        from flame import load_uv_template

        paths = ensure_demo_head()
        model = load_flame_model(paths.model if hasattr(paths, "model") else paths)
        template = load_uv_template(paths.uv_template)
        return (
            torch.as_tensor(model.v_template, dtype=torch.float32),
            torch.as_tensor(model.faces),
            torch.as_tensor(template.vt, dtype=torch.float32),
            torch.as_tensor(template.ft),
            f"demo head ({model.n_faces} faces)",
        )
    except Exception as exc:  # noqa: BLE001 - any failure means "use the generated stand-in"
        v, f, vt, ft = head_like_mesh(10000)
        return v, f, vt, ft, f"generated head-like ellipsoid ({f.shape[0]} faces; demo head unavailable: {type(exc).__name__})"


def synthetic_mesh(n_faces):
    v, f, vt, ft = head_like_mesh(n_faces)
    return v, f, vt, ft, f"generated head-like ellipsoid ({f.shape[0]} faces)"


def fit_scale(vertices):
    """Orthographic scale that makes the mesh fill ~85% of the image height."""
    return 0.85 / float(vertices[:, 1].abs().max())


def time_steps(mesh, image_size, batch, device, backend, repeats, warmup):
    v, f, vt, ft, _ = mesh
    v = v.to(device)[None].repeat(batch, 1, 1).requires_grad_(True)
    f, vt, ft = f.to(device), vt.to(device), ft.to(device)
    cam = OrthographicCamera(torch.tensor([[fit_scale(mesh[0]), 0.0, 0.0]], device=device).repeat(batch, 1), (image_size, image_size))
    texture = torch.rand(batch, 3, 256, 256, device=device, requires_grad=True)
    light = constant_light(0.8, batch, device=device)
    light[:, 3] = 0.3
    light.requires_grad_(True)
    target = torch.rand(batch, 3, image_size, image_size, device=device)

    def step():
        out = render_textured(v, cam, f, vt, ft, texture, light, backend=backend)
        loss = (out.image - target).abs().mean()
        loss.backward()
        return out

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    coverage = float(out.alpha.mean())
    return statistics.median(times) * 1e3, min(times) * 1e3, coverage


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
    parser.add_argument("--quick", action="store_true", help="short run: head mesh, 224 only, batch 1 and 16, 3 repeats")
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
        sizes, batches, repeats = [224], [1, 16], 3
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
        print(f"{mesh_name}: {mesh[4]}")
        for backend in backends:
            for size in sizes:
                for batch in batches:
                    if max_batch is not None and batch > max_batch:
                        print(f"  {backend:10s} {size}^2 batch {batch:4d}: skipped (--max-batch {max_batch})")
                        continue
                    median_ms, best_ms, coverage = time_steps(mesh, size, batch, device, backend, repeats, warmup=2)
                    row = {
                        "mesh": mesh_name, "mesh_description": mesh[4], "faces": int(mesh[1].shape[0]),
                        "backend": backend, "device": str(device), "image_size": size, "batch": batch,
                        "ms_per_step_median": round(median_ms, 2), "ms_per_step_best": round(best_ms, 2),
                        "image_steps_per_s": round(batch / (median_ms / 1e3), 1), "coverage": round(coverage, 3),
                    }
                    rows.append(row)
                    print(f"  {backend:10s} {size}^2 batch {batch:4d}: {median_ms:8.1f} ms/step (best {best_ms:.1f}), "
                          f"{row['image_steps_per_s']:8.1f} image-steps/s, coverage {coverage:.2f}")

    record = {
        "benchmark": "renderer forward+backward (rasterise+interpolate+texture+SH+L1 backward)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(device),
        "note": args.note,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"renderer_{device.type}_{dt.date.today().isoformat()}{'_quick' if args.quick else ''}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
