"""Sum up the reports of one or more ``flamefit fit`` output folders in one JSON file.

    python benchmarks/summarize_fits.py out/fits_torch out/fits_nvdiffrast --out fits.json

For each folder: per photo the status, device, backend, landmark error (% of the inter-ocular
distance), photometric error and seconds; and the medians over the photos fitted. Used by
``gpu_checks.sh`` to bring the GPU fits of real photos back as one file, and handy to compare
two runs (CPU against GPU, one backend against the other) on the same photos.

    python benchmarks/summarize_fits.py out/eval --machine cpu --note "..." --out fits.json

``--machine`` records the machine the fits ran on (run it there, right after the fits: the load
average is the one at that moment) and ``--note`` a free text, both at the top level.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

FIELDS = ("status", "fit_status", "model", "device", "backend", "landmark_error_percent_iod", "photometric_error",
          "seconds")


def summarize(folder: Path) -> dict:
    """``{"photos": {name: fields}, "fitted": n, "failed": n, "median_*": ...}`` for one folder."""
    photos = {}
    for report_path in sorted(folder.glob("*/report.json")):
        report = json.loads(report_path.read_text())
        photos[report_path.parent.name] = {key: report.get(key) for key in FIELDS}
    done = [p for p in photos.values() if p["status"] == "done"]
    summary = {"folder": str(folder), "fitted": len(done), "failed": len(photos) - len(done), "photos": photos}
    for key in ("landmark_error_percent_iod", "photometric_error", "seconds"):
        values = [p[key] for p in done if p[key] is not None]
        summary[f"median_{key}"] = statistics.median(values) if values else None
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="flamefit fit output folders")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: print only)")
    parser.add_argument("--machine", metavar="DEVICE", default=None,
                        help="also record this machine (benchmarks/_common.machine) for DEVICE, e.g. cpu")
    parser.add_argument("--note", default=None, help="free text saved as 'note'")
    args = parser.parse_args(argv)
    summaries = {folder.name: summarize(folder) for folder in args.folders}
    for name, summary in summaries.items():
        print(f"{name}: {summary['fitted']} fitted, {summary['failed']} failed; median landmark error "
              f"{summary['median_landmark_error_percent_iod']} % IOD, photometric "
              f"{summary['median_photometric_error']}, {summary['median_seconds']} s/photo")
        for photo, fields in summary["photos"].items():
            print(f"  {photo:<48} {fields['status']:<7} {fields['landmark_error_percent_iod']!s:>8.6} % IOD  "
                  f"photometric {fields['photometric_error']!s:.6}")
    if args.machine:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _common import machine
        summaries["machine"] = machine(args.machine)
    if args.note:
        summaries["note"] = args.note
    if args.out:
        args.out.write_text(json.dumps(summaries, indent=2))
        print("saved", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
