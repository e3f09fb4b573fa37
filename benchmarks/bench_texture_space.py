"""Time and peak memory of the streaming texture PCA (Gram and randomised) on synthetic maps.

Maps are albedo-like (mean skin colour + smooth low-rank variation + hash noise, see
:func:`flamefit.texture_space.synthetic.wave_texel_source`) and never held as ``N x D``: storage
``generated`` computes each texel block on demand; storage ``memmap`` first writes the stack as
a uint8 ``.npy`` in a temporary folder (block by block) and PCA reads it memory-mapped.

Every case runs in its own Python process so that its peak memory is its own. Reported:

* ``seconds``: wall time of the PCA call (includes generating/reading the data, see next);
* ``source_pass_s``: wall time of one pass that only reads every block (the data's cost;
  the Gram method makes 2 passes, the randomised one ``q + 2``);
* ``tracemalloc_peak_mb``: peak of memory allocated through Python/numpy during the PCA call
  (``tracemalloc``; numpy reports its array buffers to it) — the bounded working memory plus
  the ``(D, K)`` float32 output basis;
* ``maxrss_mb``: the process's peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
  including the interpreter, numpy/scipy/torch and, for ``memmap``, the file pages it mapped;
  ``maxrss_before_mb`` is the same high-water mark just before the PCA call (after generating
  or writing the data), so the PCA's own resident peak is at most ``maxrss_mb`` minus it
  when ``maxrss_mb`` is larger.

A second section (``--unwrap``) times :func:`flamefit.texture_space.unwrap.unwrap_photos`: per-photo
time to unwrap fitted photo crops (crop side = UV side) into de-lit UV albedo with visibility,
at given UV resolutions and batch sizes, on the demo head, on CPU or ``--device cuda``
(the one-off UV rasterisation of the layout, done once per build, is reported apart).

Examples::

    python benchmarks/bench_texture_space.py --unwrap --sizes 256 512 --batches 1 8
    python benchmarks/bench_texture_space.py --unwrap --device cuda --batches 1 16 64
    python benchmarks/bench_texture_space.py --quick
    python benchmarks/bench_texture_space.py --sizes 256 --maps 200 1500
    python benchmarks/bench_texture_space.py            # 256² and 512², N = 200 and 1500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _source(n_maps: int, resolution: int, storage: str, folder: Path):
    """The map stack of a case: a generated :class:`TexelSource` or a uint8 memory map."""
    from flamefit.texture_space.synthetic import wave_texel_source
    from flamefit.texture_space.texel_source import block_ranges

    generated = wave_texel_source(n_maps, resolution, rank=16, noise=0.02, seed=0)
    if storage == "generated":
        return generated
    path = folder / f"maps_{n_maps}_{resolution}.npy"
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n_maps, resolution, resolution, 3))
    flat = stack.reshape(n_maps, -1)
    for start, stop in block_ranges(generated.n_values, n_maps, 32.0):
        flat[:, start:stop] = np.clip(np.rint(generated.read(start, stop, np.dtype(np.float32)) * 255), 0, 255)
    stack.flush()
    del stack, flat
    return np.load(path, mmap_mode="r")


def run_case(n_maps: int, resolution: int, method: str, storage: str, n_components: int, chunk_mb: float, dtype: str) -> dict:
    """Run one PCA in this process and measure it."""
    from flamefit.texture_space.pca import texture_pca
    from flamefit.texture_space.texel_source import as_texel_source, iter_blocks

    with tempfile.TemporaryDirectory(prefix="bench_texture_space_") as folder:
        maps = _source(n_maps, resolution, storage, Path(folder))
        start = time.perf_counter()
        for _ in iter_blocks(as_texel_source(maps), chunk_mb):
            pass
        source_pass = time.perf_counter() - start
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tracemalloc.start()
        start = time.perf_counter()
        result = texture_pca(maps, n_components, method=method, chunk_mb=chunk_mb, dtype=np.dtype(dtype))
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        ratio = result.explained_variance_ratio
    return {
        "n_maps": n_maps,
        "resolution": resolution,
        "method": method,
        "storage": storage,
        "n_components": int(result.n_components),
        "chunk_mb": chunk_mb,
        "block_dtype": dtype,
        "seconds": round(seconds, 3),
        "source_pass_s": round(source_pass, 3),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "maxrss_before_mb": round(rss_before, 1),
        "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dense_data_mb": round(n_maps * resolution * resolution * 3 * 4 / 2**20, 1),
        "basis_output_mb": round(resolution * resolution * 3 * result.n_components * 4 / 2**20, 1),
        "explained_top16": round(float(ratio[:16].sum()), 4),
    }


def unwrap_case(resolution: int, batch: int, device: str, repeats: int) -> dict:
    """Time unwrapping ``batch`` synthetic fitted photos at ``resolution`` (UV and crop side)."""
    import torch

    from flamefit.fitting.scene import HeadScene
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.selection import select_model
    from flamefit.texture_space.unwrap import texel_surface, unwrap_photos

    scene = HeadScene.from_model_files(select_model(open_model=True), texture_resolution=resolution).to(device)
    params = random_parameters(scene.cpu(), batch, torch.Generator().manual_seed(0)).to(device)
    scene = scene.to(device)
    start = time.perf_counter()
    surface = texel_surface(scene.vt, scene.ft, resolution, device)
    layout_s = time.perf_counter() - start
    photos = torch.rand(batch, 3, resolution, resolution, device=device)
    weights = torch.ones(batch, 1, resolution, resolution, device=device)
    unwrap_photos(scene, params, photos, weights, surface)  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        unwrap_photos(scene, params, photos, weights, surface)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"resolution": resolution, "batch": batch, "device": device, "texels": surface.n_texels,
            "batch_s": round(best, 4), "per_photo_ms": round(1000 * best / batch, 2),
            "layout_raster_s": round(layout_s, 3), "torch_threads": torch.get_num_threads()}


def run_unwrap(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    rows = []
    print(f"{'res':>4} {'batch':>5} {'device':>6} {'texels':>7} {'batch s':>8} {'ms/photo':>9} {'layout s':>8}")
    for resolution in args.sizes:
        for batch in args.batches:
            row = unwrap_case(resolution, batch, args.device, args.repeats)
            rows.append(row)
            print(f"{row['resolution']:>4} {row['batch']:>5} {row['device']:>6} {row['texels']:>7} {row['batch_s']:>8.3f} "
                  f"{row['per_photo_ms']:>9.1f} {row['layout_raster_s']:>8.2f}", flush=True)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {"benchmark": "texture_space_unwrap", "date": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": info, "cases": rows,
              "notes": "best of --repeats; per photo = batch time / batch; machine shared with other jobs"}
    output = args.output or RESULTS / f"texture_space_unwrap_{args.device.split(':')[0]}_{dt.date.today().isoformat()}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"saved {output}")


def machine() -> dict:
    import scipy
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "blas_threads_env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if os.environ.get(k)},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny cases only (N=40 and 200 at 64²), a few seconds")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="texture resolutions (square)")
    parser.add_argument("--maps", type=int, nargs="+", default=[200, 1500], help="numbers of maps N")
    parser.add_argument("--methods", nargs="+", default=["gram", "randomized"], choices=["gram", "randomized"])
    parser.add_argument("--storage", nargs="+", default=["generated"], choices=["generated", "memmap"],
                        help="generated on the fly, and/or written to a uint8 .npy and memory-mapped")
    parser.add_argument("--components", type=int, default=50, help="K, components kept (DECA uses 50)")
    parser.add_argument("--chunk-mb", type=float, default=64.0, help="MiB of one float64 (N, block) texel block")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                        help="type of the per-block products (sums are float64 either way)")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default benchmarks/results/texture_space_pca_<date>.json)")
    parser.add_argument("--unwrap", action="store_true", help="time unwrapping (per photo) instead of the PCA")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="--unwrap: photos per batch")
    parser.add_argument("--device", default="cpu", help="--unwrap: torch device (cpu, cuda)")
    parser.add_argument("--repeats", type=int, default=3, help="--unwrap: timed repeats (best is kept)")
    parser.add_argument("--threads", type=int, default=0, help="--unwrap: torch threads (0 = torch's default)")
    parser.add_argument("--case", nargs=4, metavar=("N", "RES", "METHOD", "STORAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.case:
        n_maps, resolution, method, storage = args.case
        print(json.dumps(run_case(int(n_maps), int(resolution), method, storage, args.components, args.chunk_mb, args.dtype)))
        return
    if args.unwrap:
        run_unwrap(args)
        return
    if args.quick:
        args.sizes, args.maps, args.storage = [64], [40, 200], ["generated", "memmap"]
    info = machine()
    rows = []
    header = f"{'N':>5} {'res':>4} {'method':>10} {'storage':>9} {'K':>4} {'dtype':>7} {'time s':>8} {'1 pass s':>8} {'traced MB':>9} {'rss0 MB':>8} {'maxrss MB':>9} {'dense MB':>9} {'basis MB':>8}"
    print(header)
    for resolution in args.sizes:
        for n_maps in args.maps:
            for storage in args.storage:
                for method in args.methods:
                    command = [sys.executable, __file__, "--case", str(n_maps), str(resolution), method, storage,
                               "--components", str(args.components), "--chunk-mb", str(args.chunk_mb),
                               "--dtype", args.dtype]
                    done = subprocess.run(command, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        print(f"case N={n_maps} res={resolution} {method} {storage} failed:\n{done.stderr}", file=sys.stderr)
                        continue
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(f"{row['n_maps']:>5} {row['resolution']:>4} {row['method']:>10} {row['storage']:>9} {row['n_components']:>4} {row['block_dtype']:>7} "
                          f"{row['seconds']:>8.2f} {row['source_pass_s']:>8.2f} {row['tracemalloc_peak_mb']:>9.1f} "
                          f"{row['maxrss_before_mb']:>8.1f} {row['maxrss_mb']:>9.1f} {row['dense_data_mb']:>9.1f} {row['basis_output_mb']:>8.1f}", flush=True)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    today = dt.date.today().isoformat()
    report = {"benchmark": "texture_space_pca", "date": dt.datetime.now().isoformat(timespec="seconds"),
              "quick": args.quick, "machine": info, "cases": rows,
              "notes": "seconds include generating or reading the data; machine shared with other jobs, timings noisy"}
    output = args.output or RESULTS / f"texture_space_pca{'_quick' if args.quick else ''}_{today}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
