"""Small datasets written by the tests (renders of the demo head with their exact landmarks, in
FFHQ's layout with its metadata file, and as zip, tar shards and parquet), a watchdog so that a
hung Ray job fails the test instead of hanging the suite, and a local Ray cluster."""

from __future__ import annotations

import faulthandler
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

#: The longest a Ray test may take before the watchdog stops the run (seconds).
RAY_TEST_TIMEOUT = 240


def render_faces(demo_head_dir, count: int, size: int = 128, seed: int = 0, yaw_degrees=None):
    """``count`` renders of the demo head (random pose, shape, albedo, light; flat background):
    ``[(rgb (size, size, 3) uint8, landmarks (68, 2) pixel indices)]``; ``yaw_degrees``: the
    heads' turns (one each) instead of random ones."""
    import torch

    from flamefit.fitting.scene import HeadScene
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.selection import files_in
    from flamefit.renderer.visualize import to_uint8

    scene = HeadScene.from_model_files(files_in(demo_head_dir, kind="test"), texture_resolution=64)
    generator = torch.Generator().manual_seed(seed)
    truth = random_parameters(scene, count, generator, spread=0.5)
    if yaw_degrees is not None:
        truth.pose[:, :3] = 0.0
        truth.pose[:, 1] = torch.deg2rad(torch.tensor(yaw_degrees, dtype=torch.float32))
    with torch.no_grad():
        rendered = scene.render(truth, size)
    background = torch.rand(count, 3, 1, 1, generator=generator) * 0.6 + 0.2
    images = (rendered.image + (1 - rendered.alpha) * background).clamp(0, 1)
    # renderer pixels have centres at +0.5, photo landmarks at integers
    return [(to_uint8(images[i]), (rendered.landmarks_px[i] - 0.5).numpy().astype(np.float64))
            for i in range(count)]


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def ffhq_name(index: int) -> str:
    """FFHQ's relative path of photo ``index``: ``00000/00042.png`` (1000 per folder)."""
    return f"{index // 1000 * 1000:05d}/{index:05d}.png"


def write_ffhq(root: Path, faces, first: int = 0) -> Path:
    """``root/images1024x1024/<folder>/<n>.png`` and ``root/ffhq-dataset-v2.json`` (FFHQ's
    keys, with the faces' landmarks); returns the images folder."""
    images = root / "images1024x1024"
    metadata = {}
    for offset, (rgb, landmarks) in enumerate(faces):
        index = first + offset * 500  # two FFHQ folders (00000, 01000) for a few photos
        path = images / ffhq_name(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(rgb))
        metadata[str(index)] = {
            "category": "training", "metadata": {"license": "test"},
            "image": {"file_path": f"images1024x1024/{ffhq_name(index)}", "pixel_size": [rgb.shape[1], rgb.shape[0]],
                      "face_landmarks": landmarks.tolist()},
            "thumbnail": {"file_path": f"thumbnails128x128/{ffhq_name(index)}", "pixel_size": [128, 128]},
        }
    (root / "ffhq-dataset-v2.json").write_text(json.dumps(metadata))
    return images


def images_in(folder: Path) -> dict[str, bytes]:
    """``relative path -> bytes`` of every PNG under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_tar_shards(folder: Path, files: dict[str, bytes], per_shard: int = 3) -> list[Path]:
    """Webdataset shards ``shard-000000.tar`` ...: per sample ``KEY.png`` and ``KEY.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    items = list(files.items())
    for number, start in enumerate(range(0, len(items), per_shard)):
        path = folder / f"shard-{number:06d}.tar"
        with tarfile.open(path, "w") as archive:
            for name, data in items[start:start + per_shard]:
                key = name.rsplit(".", 1)[0]
                for member, content in ((name, data), (f"{key}.json", b'{"source": "test"}')):
                    info = tarfile.TarInfo(member)
                    info.size = len(content)
                    archive.addfile(info, io.BytesIO(content))
        shards.append(path)
    return shards


def write_parquet(path: Path, files: dict[str, bytes], hugging_face: bool = True) -> Path:
    """One row per photo: a Hugging Face ``image`` struct (bytes, path) or binary ``jpg`` and
    ``__key__`` columns (webdataset's parquet export)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names, blobs = list(files), list(files.values())
    if hugging_face:
        table = pa.table({"image": pa.array([{"bytes": b, "path": n} for n, b in zip(names, blobs)]),
                          "label": pa.array(range(len(names)))})
    else:
        table = pa.table({"__key__": [n.rsplit(".", 1)[0] for n in names], "jpg": pa.array(blobs, pa.binary())})
    pq.write_table(table, path, row_group_size=2)
    return path


@pytest.fixture
def watchdog():
    """Stop the whole run with every thread's traceback if a test hangs (a deadlocked Ray
    job): pytest-timeout's marker does the same when installed; this needs nothing."""
    faulthandler.dump_traceback_later(RAY_TEST_TIMEOUT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def ray_cluster(demo_head_dir):
    """A local Ray instance of 2 CPUs for a module (actors at 0.5 CPU leave room for reading)."""
    ray = pytest.importorskip("ray", reason="the Ray tests need flamefit[ray] (pip install 'flamefit[ray]')")
    pytest.importorskip("pyarrow", reason="the Ray tests need flamefit[ray] (pip install 'flamefit[ray]')")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    patcher.setenv("FLAMEFIT_FLAME_DIR", str(demo_head_dir.parent / "no-flame-here"))
    patcher.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"FLAMEFIT_CACHE": str(demo_head_dir.parent),
                                       "FLAMEFIT_FLAME_DIR": str(demo_head_dir.parent / "no-flame-here")}})
    yield ray
    ray.shutdown()
    patcher.undo()
