"""Architecture table: parameters, GFLOPs, CPU training throughput and inference latency.

    python benchmarks/arch_table.py                       # every custom + main SMP architecture
    python benchmarks/arch_table.py --archs fast_scnn unet --repeats 7 --threads 2

Input 360x480 (CamVid), 11 classes, random weights (speed does not depend on the values).
Times are medians over ``--repeats`` runs after a warm-up; each row also gives its speed relative
to the reference architecture measured in the same run (``--reference``), which is what to
compare across machines: absolute numbers on a shared machine move with its load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from drivseg.models import ARCHS, build_model  # noqa: E402
from drivseg.models.smp_models import DEFAULT_ENCODERS, SMP_ARCHS  # noqa: E402
from drivseg.module import split_outputs  # noqa: E402

DEFAULT_ARCHS = [
    "fast_scnn", "scratch_unet", "scratch_pspnet", "scratch_deeplabv3plus", "scratch_segformer",
    "unet", "fpn", "pspnet", "deeplabv3plus", "segformer",
]  # fmt: skip


# the README table's encoder for the SMP convolutional decoders (the package default is now
# tf_efficientnet_lite0); segformer and dpt keep their transformer defaults
TABLE_ENCODER = "resnet18"


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls (allocator, oneDNN
    kernel selection, compilation)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(arch: str, size: tuple[int, int], batch: int, repeats: int) -> dict:
    encoder = TABLE_ENCODER if arch in SMP_ARCHS and arch not in DEFAULT_ENCODERS else None
    net = build_model(arch, num_classes=11, encoder=encoder)
    params = sum(p.numel() for p in net.parameters())
    x = torch.randn(1, 3, *size)
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    gflops = counter.get_total_flops() / 2e9  # multiply-accumulates, the convention papers use

    with torch.no_grad():
        latency = median_seconds(lambda: net(x), repeats)

    net.train()
    xb = torch.randn(batch, 3, *size)
    target = torch.randint(0, 11, (batch, *size))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        main, aux = split_outputs(net(xb))
        loss = torch.nn.functional.cross_entropy(main, target)
        for a in aux:
            a = torch.nn.functional.interpolate(a, size=size, mode="bilinear")
            loss = loss + 0.4 * torch.nn.functional.cross_entropy(a, target)
        loss.backward()
        opt.step()

    train_step = median_seconds(step, repeats)
    return {"arch": arch, "params_m": params / 1e6, "gmacs": gflops, "latency_ms": 1000 * latency,
            "train_img_s": batch / train_step}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS, choices=sorted(ARCHS))
    p.add_argument("--reference", default="fast_scnn", help="architecture the speeds are divided by")
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--batch", type=int, default=2, help="training batch size")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    archs = list(dict.fromkeys([args.reference, *args.archs]))
    rows = [measure(a, (args.height, args.width), args.batch, args.repeats) for a in archs]
    ref = rows[0]
    print(f"{args.height}x{args.width}, {args.threads} threads, train batch {args.batch}, median of {args.repeats}")
    print("| arch | params (M) | GMACs | inference latency (ms) | vs ref | train (img/s) | vs ref |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arch']} | {r['params_m']:.2f} | {r['gmacs']:.1f} | {r['latency_ms']:.0f} | "
              f"{r['latency_ms'] / ref['latency_ms']:.1f}x | {r['train_img_s']:.2f} | "
              f"{r['train_img_s'] / ref['train_img_s']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
