"""A leaderboard of every run and cross-validation experiment under a folder (no W&B account needed).

    python leaderboard.py runs/
    python leaderboard.py runs/ --metric test/mIoU
    python leaderboard.py --wandb my-team/drivseg          # the same table from the W&B API

results.json / cv_results.json -> one row each (arch, encoder, loss, the config keys that differ
between rows, OOF mIoU ± fold std or val mIoU, test mIoU, train time, parameters, per-class IoU),
best first -> printed markdown + leaderboard.md / leaderboard.csv / leaderboard.png in the folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError
from drivseg.leaderboard import leaderboard, render, rows_from_wandb


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="leaderboard.py", description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, nargs="?", help="folder holding run directories and CV experiments")
    p.add_argument("--metric", help="sort by this results key, e.g. test/mIoU or val/IoU/Car "
                                    "(default: OOF mIoU for CV experiments, val mIoU for runs)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from the W&B API instead of a folder")
    p.add_argument("--no-write", action="store_true", help="print only; write no leaderboard files")
    args = p.parse_args(argv)
    if (args.folder is None) == (args.wandb is None):
        raise ConfigError("give a folder (python leaderboard.py runs/) or --wandb ENTITY/PROJECT")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.wandb:
        out = Path(args.folder or ".")
        print(render(rows_from_wandb(args.wandb), args.metric, out, not args.no_write))
    else:
        print(leaderboard(args.folder, args.metric, write=not args.no_write))
    if not args.no_write:
        out = args.folder or Path(".")
        print(f"\nWritten: {out / 'leaderboard.md'}, {out / 'leaderboard.csv'}, {out / 'leaderboard.png'}")
    return 0


def run() -> None:
    """Console command ``drivseg-leaderboard``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.leaderboard
    run()
