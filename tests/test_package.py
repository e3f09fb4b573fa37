"""The package's shape: one import root, layers that depend only downward, a cheap ``--help``."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Package folder -> the flamefit sub-packages its modules may import (itself included).
LAYERS = {
    "flame": {"utils", "flame"},
    "renderer": {"utils", "flame", "renderer"},
    "fitting": {"utils", "flame", "renderer", "fitting"},
    "texture_space": {"utils", "flame", "renderer", "fitting", "texture_space"},
    # the web page: the top layer (it may use every layer below; none may import it)
    "web": {"utils", "flame", "renderer", "fitting", "texture_space", "web"},
    # the image regressor: trained on renders and fits, writes fit results (above fitting)
    "regressor": {"utils", "flame", "renderer", "fitting", "regressor"},
    # datasets and Ray jobs: on top of fitting, texture_space and the regressor (none may import it)
    "scale": {"utils", "flame", "renderer", "fitting", "texture_space", "regressor", "scale"},
}


def flamefit_imports(path: Path) -> set[str]:
    """The ``flamefit.<name>`` sub-packages a module imports (anywhere in it, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "flamefit" and len(parts) > 1:
                found.add(parts[1])
    return found & {"utils", "flame", "renderer", "fitting", "texture_space", "regressor", "web", "scale",
                     "cli"}


def test_one_top_level_import_name():
    top_level = metadata.distribution("flamefit").read_text("top_level.txt")
    assert top_level is not None and top_level.split() == ["flamefit"]
    entry_points = {ep.name: ep.value for ep in metadata.distribution("flamefit").entry_points}
    assert entry_points == {"flamefit": "flamefit.cli:main"}


def test_generic_names_are_not_importable_from_elsewhere(tmp_path):
    code = ("import importlib.util, sys; "
            "print([n for n in ('flame', 'renderer', 'fitting', 'texture_space', 'regressor', 'web', 'scale') "
            "if importlib.util.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_depend_only_downward(package):
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = flamefit_imports(path) - LAYERS[package]
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, f"modules importing a higher layer: {wrong}"


def test_utils_import_no_layer():
    assert flamefit_imports(ROOT / "flamefit" / "utils.py") == set()


def test_help_imports_no_torch():
    code = ("import sys\nfrom flamefit.cli import main\n"
            "for command in ([], ['fit'], ['build-texture-space'], ['convert-ict'], ['serve'], ['select']):\n"
            "    main(command + ['--help'])\n"
            "heavy = [m for m in ('torch', 'fastapi', 'uvicorn', 'ray', 'pyarrow') if m in sys.modules]\n"
            "print('IMPORTED ' + ' '.join(heavy) if heavy else 'NO TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "NO TORCH"
    assert "--changed-photos" in out.stdout and "--open-model" in out.stdout
    assert "--max-upload-mb" in out.stdout and "--workers" in out.stdout
    assert out.stdout.count("--ray [ADDRESS]") >= 2 and "--landmarks-from-metadata" in out.stdout
