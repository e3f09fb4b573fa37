"""The page's files: the vendored three.js is the recorded 0.187.0 with its licence, the import
map points at files that exist, and nothing of ours names another machine."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from flamefit.web import app as web_app

STATIC = web_app.STATIC
THREE = STATIC / "vendor" / "three"


def recorded_hashes() -> dict[str, str]:
    text = (THREE / "README.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


def test_vendored_three_is_the_recorded_release_with_its_licence():
    hashes = recorded_hashes()
    assert len(hashes) == 7 and "LICENSE" in hashes
    on_disk = {str(p.relative_to(THREE)) for p in THREE.rglob("*") if p.is_file()} - {"README.md"}
    assert on_disk == set(hashes)
    for name, digest in hashes.items():
        assert hashlib.sha256((THREE / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (THREE / "LICENSE").read_text()
    assert "REVISION = '187'" in (THREE / "build" / "three.core.js").read_text()


def test_the_import_map_resolves_every_module_the_page_imports():
    html = (STATIC / "index.html").read_text()
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1))["imports"]
    assert (STATIC.parent / imports["three"]).is_file()
    addons = STATIC.parent / imports["three/addons/"]
    for source in (STATIC / "viewer.js", STATIC / "app.js"):
        for module in re.findall(r'from "([^"]+)"', source.read_text()):
            if module.startswith("three/addons/"):
                assert (addons / module.removeprefix("three/addons/")).is_file(), module
            elif module != "three":
                assert (source.parent / module).is_file(), module
    # the vendored addons' own relative imports resolve too
    for path in THREE.rglob("*.js"):
        for module in re.findall(r"from '(\.[^']+)'", path.read_text()):
            assert (path.parent / module).resolve().is_file(), (path.name, module)


def test_our_page_names_no_other_machine():
    for name in ("index.html", "app.js", "viewer.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
