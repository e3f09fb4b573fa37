"""sample-texture-space: UV images and renders of a space's mean, components and samples."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from flamefit.flame.selection import files_in
from flamefit.flame.texture_space_io import load_texture_space, save_texture_space
from flamefit.cli import build_parser
from flamefit.texture_space.sample import sample_texture_space


@pytest.fixture(scope="module")
def space_file(demo_head_dir, tmp_path_factory):
    """The demo head's own albedo space, cut to 3 components at 64²."""
    import cv2

    files = files_in(demo_head_dir, kind="test")
    space = load_texture_space(files.texture)
    mean = cv2.resize(space.mean, (64, 64), interpolation=cv2.INTER_AREA)
    basis = np.stack([cv2.resize(np.ascontiguousarray(space.basis[..., k]), (64, 64), interpolation=cv2.INTER_AREA)
                      for k in range(3)], axis=-1)
    path = tmp_path_factory.mktemp("space") / "space.npz"
    save_texture_space(path, mean, basis, space.vt, space.ft)
    return path


@pytest.mark.slow  # renders 1 + 2 x 2 + 4 heads
def test_writes_mean_components_and_samples(space_file, tmp_path, demo_head_dir, monkeypatch):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    written = sample_texture_space(space_file, tmp_path, n_components=2, n_samples=4, render_resolution=96,
                                   flame_dir=demo_head_dir)
    names = {p.name for p in written}
    assert {"uv_mean.png", "uv_pc1_minus.png", "uv_pc1_plus.png", "uv_pc2_plus.png", "components.png",
            "samples.png"} <= names
    mean = iio.imread(tmp_path / "uv_mean.png").astype(float)
    plus = iio.imread(tmp_path / "uv_pc1_plus.png").astype(float)
    minus = iio.imread(tmp_path / "uv_pc1_minus.png").astype(float)
    assert mean.shape == (64, 64, 3)
    assert np.abs(plus - mean).mean() > 2 and np.abs(minus - mean).mean() > 2
    # +3 sd and -3 sd move the colour in opposite directions
    assert ((plus - mean) * (minus - mean)).mean() < 0
    sheet = iio.imread(tmp_path / "components.png")
    assert sheet.shape[0] > 96 * 3 and sheet.std() > 10  # three rows of renders, not blank


def test_refuses_a_space_of_another_uv_layout(space_file, tmp_path, demo_head_dir, monkeypatch):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    space = load_texture_space(space_file)
    other = tmp_path / "other.npz"
    save_texture_space(other, space.mean, space.basis, space.vt, space.ft[:10])
    with pytest.raises(ValueError, match="UV layout"):
        sample_texture_space(other, tmp_path / "out", flame_dir=demo_head_dir)


def test_cli_parses_both_subcommands():
    parser = build_parser()
    args = parser.parse_args(["build-texture-space", "a.jpg", "b/", "--out", "o", "--components", "20",
                              "--rounds", "3", "--resolution", "512", "--iters", "50,200", "--min-skin", "0.2"])
    assert (args.components, args.rounds, args.resolution, args.iters, args.min_skin) == (20, 3, 512, (50, 200), 0.2)
    assert args.func.__name__ == "cmd_build_texture_space"
    args = parser.parse_args(["sample-texture-space", "s.npz", "--out", "o"])
    assert args.func.__name__ == "cmd_sample_texture_space"
    with pytest.raises(SystemExit):
        parser.parse_args(["build-texture-space", "a.jpg", "--out", "o", "--iters", "50"])
