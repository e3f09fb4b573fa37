"""A screenshot of ``flamefit serve``'s page with a fitted head, for the README.

Starts the server in this process (uvicorn on a free local port, a throw-away data folder),
opens the page in headless chromium (Python playwright driving the system's chromium,
WebGL on SwiftShader), uploads the astronaut photo that ships with scikit-image, waits for the
fit (the default schedule unless ``--iters`` says otherwise), turns the head a little with a
mouse drag and saves the page. Prints how long the fit took.

Example::

    python benchmarks/web_page_screenshot.py              # writes docs/web_page.png
    python benchmarks/web_page_screenshot.py --iters 50,100 --out /tmp/page.png
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "web_page.png")
    parser.add_argument("--iters", default="200,800", help="RIGID,FULL steps (default 200,800)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    import uvicorn
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from skimage import data

    from flamefit.web.app import create_app
    from flamefit.web.options import ServeOptions

    rigid, full = (int(v) for v in args.iters.split(","))
    with tempfile.TemporaryDirectory() as work:
        photo = Path(work) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        app = create_app(ServeOptions(data_dir=Path(work) / "data", device="cpu",
                                      rigid_steps=rigid, full_steps=full))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS, timeout=60_000)
                page = browser.new_page(viewport={"width": 1100, "height": 1000})
                page.goto(base)
                started = time.time()
                page.set_input_files("#file", str(photo))
                page.wait_for_selector('#status[data-state="done"]', timeout=1_800_000)
                seconds = time.time() - started
                page.wait_for_selector('#viewer[data-ready="1"]', timeout=60_000)
                page.wait_for_function("document.getElementById('overlay').complete")
                view = page.locator("#viewer canvas").bounding_box()
                x, y = view["x"] + view["width"] / 2, view["y"] + view["height"] / 2
                page.mouse.move(x, y)
                page.mouse.down()
                page.mouse.move(x - 25, y + 4, steps=5)
                page.mouse.up()
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                print(page.inner_text("#status"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(10)
    print(f"upload to done: {seconds:.1f} s ({rigid},{full} steps, CPU); wrote {args.out}")


if __name__ == "__main__":
    main()
