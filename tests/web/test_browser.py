"""The page in a real browser: Debian's chromium driven by Python playwright, headless, WebGL on
SwiftShader (no GPU, no display). Upload the astronaut, wait for "done" on the page, check the 3D
view is drawn, turns under a mouse drag and switches looks, and download the GLB.

Skipped, saying why, when the ``playwright`` package or a chromium binary is missing
(``apt-get install chromium``; ``.ci/run`` installs it when it runs as root). Every wait has a
timeout: the test fails rather than hangs.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.web.conftest import quick_options
from tests.web.server import running_server

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                               "(pip install -e '.[dev]')")
CHROMIUM = os.environ.get("FLAMEFIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium binary (Debian: apt-get install chromium; or set FLAMEFIT_CHROMIUM)",
                allow_module_level=True)

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
FIT_TIMEOUT_MS = 240_000
STEP_TIMEOUT_MS = 30_000


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels that differ by more than 10 levels in some channel."""
    return float((np.abs(a - b).max(axis=-1) > 10).mean())


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory, astronaut_png):
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FLAMEFIT_FLAME_DIR", str(tmp_path_factory.getbasetemp() / "no-flame-here"))
    folder = tmp_path_factory.mktemp("browser")
    (folder / "astronaut.png").write_bytes(astronaut_png)
    with running_server(quick_options(folder / "data", rigid_steps=10, full_steps=10, resolution=96)) as base:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
            try:
                context = browser.new_context(viewport={"width": 1100, "height": 1000}, accept_downloads=True)
                context.set_default_timeout(STEP_TIMEOUT_MS)
                page = context.new_page()
                elsewhere, errors = [], []
                page.on("request", lambda r: None if r.url.startswith((base, "blob:", "data:"))
                        else elsewhere.append(r.url))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(base + "/", timeout=STEP_TIMEOUT_MS)
                yield page, folder, base, elsewhere, errors
            finally:
                browser.close()
    patcher.undo()


def test_upload_fit_view_turn_and_download(browser_page):
    import trimesh

    page, folder, base, elsewhere, errors = browser_page
    page.set_input_files("#file", str(folder / "astronaut.png"))
    page.wait_for_selector('#status[data-state="done"]', timeout=FIT_TIMEOUT_MS)
    assert page.inner_text("#message").startswith("Done")
    page.wait_for_selector('#viewer[data-ready="1"]')
    page.wait_for_function("document.getElementById('overlay').complete")
    view = page.locator("#viewer canvas")

    first = pixels(view.screenshot())
    background = np.array([0xE9, 0xEB, 0xF0], dtype=np.float64)
    drawn = np.abs(first - background).max(axis=-1) > 12
    assert 0.05 < drawn.mean() < 0.9, f"{drawn.mean():.3f} of the view is drawn"
    assert first[drawn].std() > 10  # a textured, lit head, not a flat silhouette
    assert first[drawn].mean() > 60  # and not dark

    box = view.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 160, y + 20, steps=8)
    page.mouse.up()
    turned = pixels(view.screenshot())
    assert difference(first, turned) > 0.05

    page.click("#reset")
    assert difference(first, pixels(view.screenshot())) < 0.01
    page.check('input[name="look"][value="shape"]')
    shape = pixels(view.screenshot())
    assert difference(first, shape) > 0.05
    page.check('input[name="look"][value="texture"]')
    page.check("#landmarks")
    marked = pixels(view.screenshot())
    assert 0.0005 < difference(first, marked) < 0.2  # small red dots on the face

    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.click("#dl-glb")
    path = folder / "downloaded.glb"
    download.value.save_as(path)
    assert download.value.suggested_filename == "astronaut-mesh.glb"
    mesh = list(trimesh.load(path).geometry.values())[0]
    assert len(mesh.faces) > 5000
    assert np.asarray(mesh.visual.material.baseColorTexture).std() > 5

    assert elsewhere == [], f"the page asked other machines for {elsewhere}"
    assert errors == [], errors


def test_several_faces_the_visitor_picks_one(browser_page, two_faces_png):
    page, folder, _, _, errors = browser_page
    (folder / "two.png").write_bytes(two_faces_png)
    page.set_input_files("#file", str(folder / "two.png"))
    page.wait_for_selector('#status[data-state="choose"]')
    boxes = page.locator(".face-box")
    boxes.first.wait_for()
    assert boxes.count() == 2
    boxes.nth(1).click()
    page.wait_for_selector('#status[data-state="done"]', timeout=FIT_TIMEOUT_MS)
    assert page.locator("#choose").is_hidden()
    assert errors == [], errors


def test_errors_are_shown_in_plain_words(browser_page):
    page, folder, _, _, _ = browser_page
    (folder / "notes.txt").write_text("not a photo")
    page.set_input_files("#file", str(folder / "notes.txt"))
    page.wait_for_selector('#status[data-state="failed"]')
    assert "not a photo" in page.inner_text("#message")
