"""``--check-data`` speed: seconds to check a CamVid-sized dataset with 0 and 2 worker processes.

    .venv/bin/python benchmarks/check_data_speed.py                       # 5,000 pairs, 0 and 2 workers
    .venv/bin/python benchmarks/check_data_speed.py --pairs 1000 --workers 2

The dataset (``--pairs`` 480x360 PNG images + index masks in the SegNet layout, 80% train / 20%
val, street-like pixels from ``loader_throughput.street_scene`` so file sizes are camera-like) is
written once into ``--root`` (default: the system temp folder) and reused by later runs. Each
setting runs once after a warm-up listing (page cache); the check's own report is discarded.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from benchmarks.loader_throughput import street_scene  # noqa: E402
from drivseg.data.camvid import CAMVID  # noqa: E402
from drivseg.data.check import check_dataset  # noqa: E402
from tests.data.fixtures_cityscapes import write_png  # noqa: E402

SIZE = (360, 480)  # (H, W) of CamVid frames


def write_dataset(root: Path, pairs: int) -> Path:
    """``pairs`` SegNet-layout pairs under ``root`` (skipped when a complete copy is there)."""
    done = root / ".complete"
    if done.is_file() and done.read_text() == str(pairs):
        return root
    for i in range(pairs):
        split = "val" if i % 5 == 0 else "train"
        image, mask = street_scene(*SIZE, seed=i, values=list(range(12)))
        name = f"seq{i % 7:02d}_{i:06d}.png"
        write_png(root / split / name, image)
        write_png(root / f"{split}annot" / name, mask)
    done.write_text(str(pairs))
    return root


def seconds_to_check(root: Path, workers: int) -> tuple[float, int]:
    """(wall seconds, exit code) of one ``check_dataset`` run, its report discarded."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = check_dataset(CAMVID, root, Path(tempfile.gettempdir()) / "check_speed_histogram.png", workers)
    return time.perf_counter() - start, code


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--root", type=Path, default=None, help="where the dataset is written once")
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.gettempdir()) / f"drivseg_check_speed_{args.pairs}"
    start = time.perf_counter()
    write_dataset(root, args.pairs)
    seconds = time.perf_counter() - start
    print(f"dataset: {args.pairs} pairs of {SIZE[1]}x{SIZE[0]} PNGs at {root} ({seconds:.0f} s to write)")
    for path in root.rglob("*.png"):  # warm the page cache so the first setting is not penalised
        path.read_bytes()
    print("| workers | seconds | pairs/s |\n|---:|---:|---:|")
    for workers in args.workers:
        seconds, code = seconds_to_check(root, workers)
        if code != 0:
            print(f"check_dataset returned {code} on the generated dataset", file=sys.stderr)
            return 1
        print(f"| {workers} | {seconds:.1f} | {args.pairs / seconds:.0f} |")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
