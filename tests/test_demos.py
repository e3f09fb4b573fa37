"""The scripts in ``demos/`` run as a newcomer runs them (``python demos/NAME.py``), with reduced
steps, on the session's demo head, and write the files they say they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

DEMOS = Path(__file__).resolve().parents[1] / "demos"


def demo_env(cache: Path) -> dict:
    """The session's demo head as the model cache (nothing regenerated), and no FLAME even when
    the checkout's data/flame holds it, so the demos run on the demo head."""
    return dict(os.environ, FLAMEFIT_CACHE=str(cache), FLAMEFIT_FLAME_DIR=str(cache / "no-flame-here"))


def run_demo(name: str, *args: str, cwd: Path, cache: Path) -> str:
    """Run ``demos/<name>.py args`` in ``cwd`` with the demo head; its stdout."""
    env = demo_env(cache)
    done = subprocess.run([sys.executable, str(DEMOS / f"{name}.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def cache(demo_head_dir):
    return demo_head_dir.parent


@pytest.fixture(scope="module")
def one_photo(tmp_path_factory, cache):
    folder = tmp_path_factory.mktemp("fit_one_photo")
    return folder, run_demo("fit_one_photo", "--quick", "--out", "out", cwd=folder, cache=cache)


def test_demos_are_short_and_explain_themselves():
    scripts = sorted(DEMOS.glob("*.py"))
    assert {p.stem for p in scripts} >= {"fit_one_photo", "fit_folder_on_gpu", "build_texture_space",
                                          "refine_regressor_output", "export_glb", "regress_then_fit"}
    for script in scripts:
        text = script.read_text()
        assert text.startswith('"""'), f"{script.name} has no docstring"
        assert len(text.splitlines()) <= 60, f"{script.name} is no longer short"


def test_fit_one_photo(one_photo):
    folder, stdout = one_photo
    result = folder / "out" / "astronaut"
    assert "1 fitted" in stdout and str(Path("out") / "astronaut" / "mesh.obj") in stdout
    for name in ("mesh.obj", "mesh.mtl", "params.npz", "camera.npz", "sheet.png", "report.json"):
        assert (result / name).is_file(), name


def test_export_glb(one_photo, cache):
    import trimesh

    folder, _ = one_photo
    stdout = run_demo("export_glb", "out/astronaut", "--glb", "head.glb", cwd=folder, cache=cache)
    assert "with its albedo texture" in stdout
    scene = trimesh.load(folder / "head.glb")
    (mesh,) = scene.geometry.values()
    obj_vertices = sum(1 for line in open(folder / "out" / "astronaut" / "mesh.obj") if line.startswith("v "))
    # vertices are split along UV seams, never dropped
    assert len(mesh.vertices) >= obj_vertices > 1000 and len(mesh.faces) > 1000
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    texture = np.asarray(mesh.visual.material.baseColorTexture)
    assert texture.ndim == 3 and texture.shape[2] >= 3 and texture.std() > 1


def test_export_glb_without_a_result_says_what_to_do(tmp_path, cache):
    done = subprocess.run([sys.executable, str(DEMOS / "export_glb.py"), "nowhere"], cwd=tmp_path,
                          env=demo_env(cache), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "fit_one_photo.py" in done.stderr


def test_fit_folder_on_gpu(tmp_path, cache):
    stdout = run_demo("fit_folder_on_gpu", "--quick", "--device", "cpu", "--batch-size", "2",
                      "--out", "out", cwd=tmp_path, cache=cache)
    assert "on the CPU" in stdout and "2 fitted" in stdout
    for name in ("astronaut", "astronaut_mirrored"):
        assert (tmp_path / "out" / name / "mesh.obj").is_file()
        assert (tmp_path / "out" / name / "report.json").is_file()


def test_build_texture_space(tmp_path, cache):
    from flamefit.flame.texture_space_io import load_texture_space

    stdout = run_demo("build_texture_space", "--quick", "--components", "2", "--out", "out",
                      cwd=tmp_path, cache=cache)
    assert len(list((tmp_path / "out" / "toy_photos").glob("*.png"))) == 6
    space = load_texture_space(tmp_path / "out" / "texture_space.npz")
    assert 1 <= space.n_components <= 2 and space.mean.shape == (64, 64, 3)
    assert space.vt is not None and space.ft is not None
    for name in ("samples.png", "components.png", "uv_mean.png"):
        assert (tmp_path / "out" / "look" / name).is_file()
        assert name in stdout or name == "uv_mean.png"


def test_refine_regressor_output_starts_from_the_code_dict(tmp_path, cache):
    # rigid steps only: they move the global pose and camera, so the code dict's jaw opening
    # (0.1 rad) and light must come through unchanged
    stdout = run_demo("refine_regressor_output", "--iters", "2,0", "--out", "out", cwd=tmp_path,
                      cache=cache)
    codes = np.load(tmp_path / "out" / "codedict.npy", allow_pickle=True).item()
    assert {k: v.shape for k, v in codes.items()} == {
        "shape": (1, 100), "tex": (1, 50), "exp": (1, 50), "pose": (1, 6), "cam": (1, 3), "light": (1, 9, 3)}
    params = np.load(tmp_path / "out" / "astronaut" / "params.npz")
    assert params["pose"][6] == pytest.approx(0.1, abs=1e-6)
    np.testing.assert_allclose(params["light"], codes["light"][0], atol=1e-6)
    assert "jaw opening +0.100" in stdout and (tmp_path / "out" / "astronaut" / "mesh.obj").is_file()


def test_regress_then_fit_refines_the_regressors_start(tmp_path, cache):
    stdout = run_demo("regress_then_fit", "--iters", "2,3", "--out", "out", cwd=tmp_path, cache=cache)
    assert "after regress" in stdout and "after the fit" in stdout
    regressed = json.loads((tmp_path / "out" / "regressed" / "astronaut" / "report.json").read_text())
    fitted = json.loads((tmp_path / "out" / "fitted" / "astronaut" / "report.json").read_text())
    assert regressed["method"] == "image regressor" and regressed["model"].startswith("ICT-FaceKit")
    assert any("params.npz" in note for note in fitted["notes"])
