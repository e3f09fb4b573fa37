"""``flamefit demo`` / ``make demo``: fit the astronaut photo that ships with scikit-image.

Uses FLAME when ``data/flame/`` (or ``--flame-dir``) holds it, the shipped open model
(ICT-FaceKit Light) otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flamefit.fitting import results
from flamefit.fitting.batch import FitOptions, FitSummary, fit_images
from flamefit.utils import write_image

log = logging.getLogger(__name__)


def demo_photo(folder: Path) -> Path:
    """Write ``skimage.data.astronaut()`` (Eileen Collins, public domain) as a PNG; its path."""
    from skimage import data

    path = folder / "astronaut.png"
    if not path.is_file():
        write_image(path, data.astronaut())
    return path


def run_demo(out: str | Path = Path("out") / "demo", flame_dir: Path | None = None,
             open_model: bool = False, options: FitOptions | None = None) -> FitSummary:
    """Fit the demo photo into ``out`` and print where the results are."""
    out = Path(out)
    photo = demo_photo(out / "inputs")
    options = options or FitOptions()
    options.flame_dir, options.open_model, options.overwrite = flame_dir, open_model, True
    summary = fit_images([photo], out, options)
    result = out / summary.fitted[0] if summary.fitted else None
    print(summary.line())
    if result is not None:
        print(f"results for {photo.name}: {result}/")
        for name in (results.SHEET_FILE, results.OVERLAY_FILE, results.MESH_FILE,
                     results.PARAMS_FILE, results.REPORT_FILE):
            print(f"  {result / name}")
    for name, reason in summary.failed.items():
        print(f"failed: {name}: {reason}")
    return summary
