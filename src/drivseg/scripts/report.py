"""Write the one-page HTML report of a run directory (train.py writes it at the end of every run).

    python report.py runs/camvid-unet-resnet18-20240101-120000
    python report.py runs/x --samples 5 --data-root /data/camvid    # the data moved since training

config.yaml, results.json, history.csv | csv/metrics.csv, val_confusion.csv, the best checkpoint on
the val split -> RUN/report.html (self-contained: embedded PNGs, inline CSS, no JavaScript). Inputs an
older run lacks get a note in their section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError
from drivseg.inference import pick_device
from drivseg.report import write_report


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="report.py", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a run directory (train.py --output-dir)")
    p.add_argument("--samples", type=int, default=3,
                   help="how many best and how many worst val images to show (default: 3)")
    p.add_argument("--data-root", help="dataset folder (default: data_root of the run's config.yaml)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")
    args = p.parse_args(argv)
    if args.samples < 0:
        raise ConfigError(f"--samples {args.samples}: expected 0 or more")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    pick_device(args.device)  # fails here, in one line, rather than as a note in the page
    out = write_report(args.run_dir, args.samples, args.device, args.data_root)
    print(f"Report in {out}")
    return 0


def run() -> None:
    """Console command ``drivseg-report``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.report
    run()
