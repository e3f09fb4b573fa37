"""Shared fixtures of the web tests: photos, the model environment, quick server options."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'flamefit[web]'")


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut_png() -> bytes:
    from skimage import data

    return png_bytes(data.astronaut())


@pytest.fixture(scope="session")
def two_faces_png() -> bytes:
    """The astronaut twice, side by side (the right one mirrored): two faces."""
    from skimage import data

    rgb = data.astronaut()
    return png_bytes(np.concatenate([rgb, rgb[:, ::-1]], axis=1))


@pytest.fixture(autouse=True)
def no_flame_of_the_checkout(monkeypatch, tmp_path_factory):
    """Fits use the shipped open model, whatever data/flame of the checkout holds."""
    monkeypatch.setenv("FLAMEFIT_FLAME_DIR", str(tmp_path_factory.getbasetemp() / "no-flame-here"))


def quick_options(data_dir, **changes):
    """Server options for tests: tiny fits (a few steps at 64 px), small limits."""
    from flamefit.web.options import ServeOptions

    values = dict(data_dir=data_dir, device="cpu", rigid_steps=4, full_steps=4, resolution=64,
                  workers=1, queue_size=4)
    values.update(changes)
    return ServeOptions(**values)
