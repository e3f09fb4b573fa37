"""Feed-forward reconstruction with the image regressor, then a short fit that refines it.

    python demos/regress_then_fit.py                 # the astronaut photo
    python demos/regress_then_fit.py photos/ --model runs/mine   # your photos, your regressor

`regress` runs one CNN pass per face (the regressor trained for the open model ships with
flamefit; `flamefit train-regressor` trains others) and writes the same files as `fit`; `fit
--init` then starts from those parameters, so the rigid stage can be short.
"""
import argparse
import json
from pathlib import Path

import imageio.v3 as iio
from skimage import data

from flamefit.fitting.batch import FitOptions, fit_images
from flamefit.regressor import RegressOptions, regress_images

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("photos", nargs="?", help="a photo or a folder (default: scikit-image's astronaut)")
parser.add_argument("--model", type=Path, default=None, help="a train-regressor folder (default: the shipped one)")
parser.add_argument("--out", type=Path, default=Path("out/demos/regress"), help="results folder")
parser.add_argument("--iters", default="20,300", help="refinement steps: rigid,full (default %(default)s)")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
photos = args.photos or args.out / "astronaut.png"
if args.photos is None:
    iio.imwrite(photos, data.astronaut())

shipped = args.model is None  # the shipped regressor is the open model's
options = RegressOptions(model=args.model, open_model=shipped, overwrite=True)
regressed = regress_images([photos], args.out / "regressed", options)
rigid, full = (int(n) for n in args.iters.split(","))
fitted = fit_images([photos], args.out / "fitted", FitOptions(
    init=args.out / "regressed", rigid_steps=rigid, full_steps=full, open_model=shipped, overwrite=True))
print(regressed.line(), fitted.line(), sep="\n")
for name in fitted.fitted:
    before, after = (json.loads((args.out / stage / name / "report.json").read_text())
                     for stage in ("regressed", "fitted"))
    print(f"{name}: landmark error {before['landmark_error_percent_iod']:.1f} % IOD after regress "
          f"({before['network_seconds'] * 1000:.0f} ms), {after['landmark_error_percent_iod']:.1f} % after "
          f"the fit; look at {args.out / 'fitted' / name / 'sheet.png'}")
raise SystemExit(0 if fitted.fitted and not fitted.failed else 1)
