"""The build-and-iterate pipeline end to end on synthetic photos of a known texture space,
the saved file's layout, and resuming after a crash."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from flamefit.fitting.albedo import AlbedoModel
from flamefit.utils import write_image
from flamefit.fitting.scene import HeadScene
from flamefit.fitting.synthetic import random_parameters
from flamefit.flame.selection import files_in
from flamefit.flame.texture_space_io import load_texture_space
from flamefit.renderer.shading import SH_CONSTANT_FACTORS
from flamefit.renderer.visualize import to_uint8
from flamefit.texture_space.build import BuildOptions, build_texture_space
from flamefit.texture_space.evaluation import principal_angles
from flamefit.texture_space.state import BuildFolder, load_unwrap
from flamefit.texture_space.synthetic import smooth_fields
from flamefit.texture_space.uv_raster import rasterize_uv

UV = 64
PHOTO = 128
TRUE_K = 4
N_PHOTOS = 30


def known_space(scene: HeadScene, rng: np.random.Generator):
    """A smooth albedo space on the head's UV layout: the (blurred) demo mean plus 4 smooth
    components, zero-mean per channel over the atlas (so they do not trade with the light's
    overall colour), RMS 0.1 * 0.8^k."""
    from scipy.ndimage import gaussian_filter

    covered = rasterize_uv(scene.vt.numpy(), scene.ft.numpy(), (UV, UV))[0] >= 0
    fields = smooth_fields(TRUE_K, UV, rng, smoothness=6.0)
    fields -= (fields * covered[None, ..., None]).sum(axis=(1, 2), keepdims=True) / covered.sum()
    fields *= covered[None, ..., None]
    fields /= np.sqrt((fields[:, covered] ** 2).mean(axis=(1, 2)))[:, None, None, None]
    basis = np.moveaxis(fields, 0, -1) * (0.1 * 0.8 ** np.arange(TRUE_K))
    mean = gaussian_filter(scene.albedo.mean[0].permute(1, 2, 0).numpy(), (2, 2, 0))
    return mean, basis, covered


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # builds with real fits


def render_photos(demo_head_dir, folder, n_photos: int):
    """``n_photos`` renders of the demo head with albedos of the known space, random pose, shape,
    expression and a white directional light, saved as ``folder/photos/face_XX.png`` with their
    exact landmarks in ``folder/landmarks/face_XX.npy``; returns the known space
    ``(mean, basis, covered)``. Shared with ``tests.texture_space.test_rounds``."""
    scene = HeadScene.from_model_files(files_in(demo_head_dir, kind="test"), texture_resolution=UV)
    mean, basis, covered = known_space(scene, np.random.default_rng(0))
    scene.albedo = AlbedoModel(torch.tensor(mean).permute(2, 0, 1)[None].float(),
                               torch.tensor(basis).permute(3, 2, 0, 1).float())
    generator = torch.Generator().manual_seed(1)
    truth = random_parameters(scene, n_photos, generator, spread=0.5)
    truth.texture[:] = torch.randn(n_photos, TRUE_K, generator=generator)
    truth.light[:, 0, :] = 1.0 / SH_CONSTANT_FACTORS[0]  # the fit's starting light: ambient shading 1
    truth.light[:, 1:, :] = 0.3 * truth.light[:, 1:, :1]  # white light: its colour is not an albedo
    with torch.no_grad():
        rendered = scene.render(truth, PHOTO)
    background = torch.rand(n_photos, 3, 1, 1, generator=generator) * 0.6 + 0.2
    images = (rendered.image + (1 - rendered.alpha) * background).clamp(0, 1)
    (folder / "photos").mkdir(parents=True)
    (folder / "landmarks").mkdir()
    for index in range(n_photos):
        write_image(folder / "photos" / f"face_{index:02d}.png", to_uint8(images[index]))
        # renderer pixels have centres at +0.5, photo landmarks at integers
        np.save(folder / "landmarks" / f"face_{index:02d}.npy", (rendered.landmarks_px[index] - 0.5).numpy())
    return mean, basis, covered


@pytest.fixture(scope="module")
def photos(demo_head_dir, tmp_path_factory, monkeypatch_module):
    """30 synthetic photos of the known space (:func:`render_photos`)."""
    folder = tmp_path_factory.mktemp("synthetic_faces")
    return (folder, *render_photos(demo_head_dir, folder, N_PHOTOS))


@pytest.fixture(scope="module")
def built(photos, demo_head_dir, monkeypatch_module):
    folder, *_ = photos
    # 30 rigid steps suffice with exact landmarks; the full steps matter: with 50 of them (and the
    # earlier, too dim starting light) the light had not converged, the unwrapped albedo's error
    # on seen texels was 0.09 instead of 0.065 and the largest principal angle 39 deg, not 34.
    options = BuildOptions(
        components=TRUE_K, rounds=1, resolution=UV, batch_size=N_PHOTOS, iters=(30, 200), fit_resolution=80,
        unwrap_crop=PHOTO, landmarks=folder / "landmarks", flame_dir=demo_head_dir, bootstrap="model", min_skin=0.05,
    )
    summary = build_texture_space([folder / "photos"], folder / "build", options, show_progress=False)
    return summary


def often_seen_texels(built) -> np.ndarray:
    """``(H, W)`` texels that at least half of the training photos saw."""
    report = built.rounds[0]
    train = [name for name in built.used if name not in report["holdout"]]
    state = BuildFolder(built.out_dir)
    seen = np.stack([load_unwrap(state.unwrap_file(0, name))[1] > 0 for name in train])
    return seen.mean(axis=0) >= 0.5


def captured_energy(angles_deg: np.ndarray) -> float:
    return float(np.mean(np.cos(np.radians(angles_deg)) ** 2))


def test_recovers_the_known_subspace_where_the_photos_see_the_face(built, photos):
    """Texels that no or few photos see (the back of the head, under the chin, the ears) can
    only be completed, not recovered, and about three quarters of the true components' energy
    lies on texels fewer than half of the photos saw; so the subspaces are compared on the
    texels at least half of the photos saw."""
    _, mean, true_basis, covered = photos
    space = load_texture_space(built.space_path)
    assert space.n_components == TRUE_K and space.resolution == UV
    seen = often_seen_texels(built) & covered
    assert 0.15 < seen.sum() / covered.sum() < 0.6
    angles = np.degrees(principal_angles(space.basis[seen], true_basis[seen]))
    # One photo cannot tell an albedo's overall colour from its light's: each unwrapped map is
    # off by a per-photo gain per channel, i.e. along the mean's three colour channels. Against
    # the true basis plus those three directions the remaining angles measure everything else.
    colour_gain = np.stack([np.where(np.arange(3) == c, mean, 0.0) for c in range(3)], axis=-1)
    with_gain = np.degrees(principal_angles(space.basis[seen], np.concatenate([true_basis, colour_gain], -1)[seen]))
    everywhere = np.degrees(principal_angles(space.basis[covered], true_basis[covered]))
    print("principal angles (deg) on seen texels:", np.round(angles, 1), "captured", round(captured_energy(angles), 3),
          "| with colour gain:", np.round(with_gain, 1), "captured", round(captured_energy(with_gain), 3),
          "| on all texels:", np.round(everywhere, 1))
    # measured: seen 33, 23, 21, 18 deg (captured 0.84); with colour gain 25, 22, 19, 18 (0.87);
    # on all covered texels 67, 60, 50, 43. A random 4-d subspace of the ~3000 seen values has
    # all four angles above 85 deg (captured ~0.001).
    assert angles.max() < 42.0 and angles.min() < 22.0
    assert captured_energy(angles) > 0.75
    assert with_gain.max() < 30.0
    assert captured_energy(with_gain) > 0.82


def test_held_out_photos_are_reconstructed_better_than_by_the_mean(built):
    report = built.rounds[0]
    assert report["n_holdout"] >= 2 and report["n_train"] + report["n_holdout"] == N_PHOTOS
    gen = report["generalisation"]
    print("generalisation:", gen["rmse_space"], "mean only:", gen["rmse_mean_only"])
    # measured: 0.058 against 0.115
    assert gen["rmse_space"] < 0.7 * gen["rmse_mean_only"]
    assert report["fit"]["photometric_error_mean"] < 0.02
    assert 0 < report["compactness"]["1"] < report["compactness"][str(TRUE_K)] <= 1.0


def test_reports_and_official_layout(built, photos):
    folder = built.out_dir
    rounds = json.loads((folder / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0]
    assert "generalisation" in (folder / "summary.txt").read_text()
    assert not built.skipped
    with np.load(built.space_path, allow_pickle=False) as data:
        mean_bgr, tex_dir = data["mean"], data["tex_dir"]
        assert mean_bgr.shape == (UV, UV, 3) and tex_dir.shape == (UV, UV, 3, TRUE_K)
        assert data["vt"].shape[1] == 2 and data["ft"].shape[1] == 3
        assert int(data["meta_n_photos"]) == rounds[0]["n_train"]
        assert 20 < mean_bgr[..., 2].mean() <= 255  # 0-255 values
    space = load_texture_space(built.space_path)
    coefficients = np.array([1.0, -0.5, 0.25, 2.0])
    plain = (mean_bgr + tex_dir @ coefficients)[..., ::-1] / 255.0  # BGR 0-255 -> RGB 0-1
    loaded = space.mean + space.basis @ coefficients
    np.testing.assert_allclose(plain, loaded, atol=1e-5)
    # unit-variance basis: the training photos' coefficients have unit sample variance
    ratio = np.asarray(space.metadata["explained_variance"])
    np.testing.assert_allclose((tex_dir / 255.0).reshape(-1, TRUE_K).__pow__(2).sum(axis=0), ratio, rtol=1e-3)


def test_resume_after_a_crash_does_not_refit_finished_photos(photos, demo_head_dir, tmp_path, monkeypatch_module):
    folder, *_ = photos
    subset = tmp_path / "photos"
    subset.mkdir()
    for index in range(6):
        shutil.copy(folder / "photos" / f"face_{index:02d}.png", subset)
    options = BuildOptions(components=2, rounds=1, resolution=32, batch_size=3, iters=(2, 2), fit_resolution=64,
                           unwrap_crop=64, landmarks=folder / "landmarks", flame_dir=demo_head_dir, min_skin=0.0)
    out = tmp_path / "build"

    class Crash(RuntimeError):
        pass

    first: list[str] = []

    def crash_after_three(round_index, name, record):
        first.append(name)
        if len(first) == 3:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        build_texture_space([subset], out, options, on_photo=crash_after_three, show_progress=False)
    finished = {name: (out / "round_00" / "photos" / f"{name}.json").stat().st_mtime_ns for name in first}
    second: list[str] = []
    summary = build_texture_space([subset], out, options, on_photo=lambda r, n, rec: second.append(n),
                                  show_progress=False)
    assert not set(first) & set(second)
    assert sorted(first + second) == [f"face_{i:02d}" for i in range(6)]
    for name, stamp in finished.items():
        assert (out / "round_00" / "photos" / f"{name}.json").stat().st_mtime_ns == stamp
    assert summary.space_path.is_file() and len(summary.used) == 6
    # a third run finds the round finished and redoes nothing
    third: list[str] = []
    build_texture_space([subset], out, options, on_photo=lambda r, n, rec: third.append(n), show_progress=False)
    assert third == []
    # other fixed settings are refused with a clear message
    with pytest.raises(ValueError, match="other settings"):
        build_texture_space([subset], out, BuildOptions(**{**options.__dict__, "resolution": 48}), show_progress=False)
