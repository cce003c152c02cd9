"""Scores -> class ids: ``drivseg.module.class_ids`` (``max(dim=1).indices``) against ``argmax(dim=1)``.

    .venv/bin/python benchmarks/class_ids.py
    .venv/bin/python benchmarks/class_ids.py --repeats 11 --threads 1

Every evaluation, OOF prediction, ensemble and predict.py call turns (B, C, H, W) scores at the
label resolution into class ids. On CPUs PyTorch's ``argmax`` over the class dimension (not the
innermost one) is several times slower than ``max`` over the same dimension, on one thread and on
several (pytorch/pytorch#140000). Both are timed alternately in one process, on the same tensors
(call by call, not one block after the other as ``arch_table.median_seconds`` does, so that a busy
moment of a shared machine falls on both); the table gives the median ms of each and their ratio,
and the run fails if the ids differ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

import torch  # noqa: E402

from drivseg.module import class_ids  # noqa: E402

# (B, C, H, W): one CamVid frame, a CamVid eval batch, a Cityscapes eval batch at half size
SHAPES = [(1, 11, 360, 480), (8, 11, 360, 480), (4, 19, 512, 1024)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def measure(shape: tuple[int, ...], dtype: torch.dtype, repeats: int) -> dict:
    """Median ms of ``argmax(1)`` and ``class_ids``, timed alternately (the equality check warms both up)."""
    scores = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    if not torch.equal(scores.argmax(dim=1), class_ids(scores)):
        raise AssertionError(f"class_ids differs from argmax at {shape} {dtype}")
    argmax_ms, ours_ms = [], []
    for _ in range(repeats):
        argmax_ms.append(timed_ms(lambda: scores.argmax(dim=1)))
        ours_ms.append(timed_ms(lambda: class_ids(scores)))
    a, b = statistics.median(argmax_ms), statistics.median(ours_ms)
    return {"shape": "x".join(map(str, shape)), "dtype": str(dtype).removeprefix("torch."),
            "argmax_ms": round(a, 2), "class_ids_ms": round(b, 2), "speedup": round(a / b, 2)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}\n")
    print("| scores (B x C x H x W) | dtype | argmax(1) ms | class_ids ms | speed-up |")
    print("|---|---|---:|---:|---:|")
    for shape in SHAPES:
        for name in args.dtypes:
            row = measure(shape, DTYPES[name], args.repeats)
            print(f"| {row['shape']} | {row['dtype']} | {row['argmax_ms']} | {row['class_ids_ms']} | "
                  f"{row['speedup']}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
