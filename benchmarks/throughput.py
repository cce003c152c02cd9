"""Training throughput of the full train.py pipeline against a plain PyTorch loop, FLOP utilisation,
and the inference side (eager fp32 / bf16, channels_last, ONNX Runtime, torch.compile).

    python benchmarks/throughput.py --data-root ../shared/data/camvid --json throughput.json
    python benchmarks/throughput.py --models unet-r18 fast_scnn --repeats 3 --steps 12
    python benchmarks/throughput.py --inference-only --models fast_scnn fpn-lite0

(a) ``train.train`` itself (Lightning, our DataModule with workers and augmentation, the confusion
matrix metric, logging, per-epoch checkpoints) and (b) a plain loop over the same DataLoader with the
same network, loss, optimizer, batch and precision, run alternately in one process, ``--repeats``
times; the table gives the medians and the ratio (a)/(b). Both are timed over the same window of
optimizer steps after a warm-up (two epochs, so (a) pays one epoch-end checkpoint in it).
FLOP utilisation: 3 x forward MACs x 2 FLOPs per image (forward + backward ~ 3 forwards), divided by
this machine's matmul peak measured in the same run (a large fp32 / bf16 ``torch.mm``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks.arch_table import median_seconds  # noqa: E402

# name -> (arch, encoder, encoder weights)
MODELS = {
    "unet-r18": ("unet", "resnet18", "none"),
    "unet-lite0": ("unet", "tf_efficientnet_lite0", "imagenet"),
    "fpn-r18": ("fpn", "resnet18", "none"),
    "fpn-lite0": ("fpn", "tf_efficientnet_lite0", "imagenet"),
    "deeplabv3plus-r18": ("deeplabv3plus", "resnet18", "none"),
    "deeplabv3plus-lite0": ("deeplabv3plus", "tf_efficientnet_lite0", "imagenet"),
    "pspnet-lite0": ("pspnet", "tf_efficientnet_lite0", "imagenet"),
    "fast_scnn": ("fast_scnn", None, "none"),
    "bisenetv2": ("bisenetv2", None, "none"),
    "hrnet": ("hrnet", None, "none"),
    "scratch_unet": ("scratch_unet", None, "none"),
    "scratch_segformer": ("scratch_segformer", None, "none"),
    "segmenter": ("segmenter", None, "none"),
}
# the rows of the parity table (the list); the others are for the channels_last study
PARITY_MODELS = ["unet-r18", "unet-lite0", "fpn-r18", "fpn-lite0", "deeplabv3plus-r18", "deeplabv3plus-lite0",
                 "fast_scnn", "scratch_segformer"]


def matmul_peak(dtype: torch.dtype, n: int = 3072, repeats: int = 7) -> float:
    """FLOP/s of a large square matmul, best of ``repeats``: the practical peak of this CPU for ``dtype``
    (the best, not the median: a peak is what the hardware can do when nothing else runs)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = min(median_seconds(lambda: torch.mm(a, b), 1, warmup=0) for _ in range(repeats))
    return 2 * n**3 / best


def forward_macs(net: torch.nn.Module, size: tuple[int, int]) -> float:
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 3, *size))
    net.train()
    return counter.get_total_flops() / 2


class StepTimes(pl.Callback):
    """Wall-clock time at the end of every optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())


def window_rate(times: list[float], warmup: int, batch: int) -> float:
    """Images/s between the end of step ``warmup`` and the end of the last step."""
    return batch * (len(times) - warmup) / (times[-1] - times[warmup - 1])


def train_args(model: str, args: argparse.Namespace, run_dir: Path, precision: str) -> list[str]:
    arch, encoder, weights = MODELS[model]
    return [
        "--data", "camvid", "--data-root", str(args.data_root), "--arch", arch,
        "--encoder", str(encoder), "--encoder-weights", weights, "--crop-size", args.crop,
        "--scale-range", "1", "1", "--batch-size", str(args.batch), "--num-workers", str(args.workers),
        "--epochs", "2", "--limit-train-batches", str(args.steps), "--limit-val-batches", "0.1",
        "--val-every", "1000", "--logger", "csv", "--precision", precision, "--no-report",
        "--output-dir", str(run_dir), "--overwrite", "--optimizer", "adamw", "--loss", "ce",
        "--channels-last", args.channels_last,
    ]  # fmt: skip


def lightning_rate(model: str, args, run_dir: Path, precision: str) -> float:
    import train

    meter = StepTimes()
    assert train.train(train_args(model, args, run_dir, precision), extra_callbacks=[meter]) == 0
    return window_rate(meter.times, args.warmup, args.batch)


def plain_rate(model: str, args, precision: str) -> float:
    """The same network, data, loss, optimizer and precision in a hand-written loop."""
    from drivseg.cli import parse_config
    from drivseg.data import get_source
    from drivseg.experiment import build_datamodule, build_module, normalization
    from drivseg.data.transforms import normalize

    cfg = parse_config(train_args(model, args, Path(tempfile.mkdtemp()), precision))
    pl.seed_everything(cfg.seed, verbose=False)
    source = get_source(cfg.data, cfg.data_root)
    dm = build_datamodule(cfg, source, Path(cfg.data_root))
    dm.setup()
    mean, std = normalization(cfg.encoder, cfg.encoder_weights)
    module = build_module(cfg, dm.label_spec, None, mean, std)  # the same network and loss objects
    net, loss_fn = module.net, module.loss
    mean_t, std_t = module.mean, module.std
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = precision == "bf16-mixed"
    times = []
    net.train()
    loader = dm.train_dataloader()  # once: its workers persist across epochs, as in train.py
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i == args.steps:
                break
            images = normalize(batch["image"], mean_t, std_t)
            if module.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            masks = batch["mask"].long()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out = net(images)
            logits = out["out"] if isinstance(out, dict) else out
            loss = loss_fn(logits, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter())
    return window_rate(times, args.warmup, args.batch)


def parity(models: list[str], args) -> list[dict]:
    from drivseg.models import build_model
    from drivseg.performance import resolve_precision

    precision = resolve_precision(args.precision, "cpu")[0]
    size = tuple(int(v) for v in args.crop.split("x"))
    peak = {"32": matmul_peak(torch.float32), "bf16-mixed": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peak['32'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16-mixed'] / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for model in models:
        arch, encoder, _ = MODELS[model]
        macs = forward_macs(build_model(arch, 11, encoder, None), size)
        a, b = [], []
        for r in range(args.repeats):
            # alternate which goes first, so a drift of the machine's speed favours neither
            if r % 2 == 0:
                a.append(lightning_rate(model, args, tmp / f"{model}-{r}", precision))
                b.append(plain_rate(model, args, precision))
            else:
                b.append(plain_rate(model, args, precision))
                a.append(lightning_rate(model, args, tmp / f"{model}-{r}", precision))
            print(f"{model} repeat {r}: lightning {a[-1]:.2f} img/s, plain {b[-1]:.2f} img/s", flush=True)
        ma, mb = statistics.median(a), statistics.median(b)
        flops = 3 * macs * 2 * ma
        rows.append({"model": model, "precision": precision, "gmacs": macs / 1e9, "lightning_img_s": ma,
                     "plain_img_s": mb, "ratio": ma / mb, "ratios": [x / y for x, y in zip(a, b)],
                     "gflop_s": flops / 1e9, "utilisation": flops / peak[precision],
                     "utilisation_of_fp32_peak": flops / peak["32"]})  # fmt: skip
    return rows


def channels_last_study(models: list[str], args) -> list[dict]:
    """Plain-loop training images/s with NHWC against NCHW tensors, alternating, per model."""
    from drivseg.performance import resolve_precision

    precision = resolve_precision(args.precision, "cpu")[0]
    rows = []
    for model in models:
        rates: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.repeats):
            for setting in ("off", "on"):
                rates[setting].append(plain_rate(model, argparse.Namespace(**{**vars(args), "channels_last": setting}), precision))
        on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
        rows.append({"model": model, "precision": precision, "nchw_img_s": off, "nhwc_img_s": on, "ratio": on / off})
        print(f"{model}: channels_last {on:.2f} img/s, contiguous {off:.2f} img/s, ratio {on / off:.3f}", flush=True)
    return rows


def inference(models: list[str], args) -> list[dict]:
    """Images/s and ms per batch at 360x480 for each way of running the network."""
    from drivseg.export import OnnxRunner, export_onnx
    from drivseg.models import build_model

    rows = []
    for model in models:
        arch, encoder, _ = MODELS[model]
        for batch in (1, 8):
            x = torch.rand(batch, 3, 360, 480)
            variants = {}
            net = build_model(arch, 11, encoder, None).eval()
            with torch.no_grad():
                variants["eager fp32"] = lambda: net(x)

                def bf16(net=net):
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return net(x)

                variants["eager bf16"] = bf16
                cl = build_model(arch, 11, encoder, None).eval().to(memory_format=torch.channels_last)
                xcl = x.contiguous(memory_format=torch.channels_last)

                def channels_last(cl=cl):
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return cl(xcl)

                variants["channels_last bf16"] = channels_last
                try:
                    onnx_path = Path(tempfile.mkdtemp()) / f"{model}.onnx"
                    export_onnx(net, onnx_path, x[:1], {}, dynamic=True, arch=arch)
                    runner = OnnxRunner(onnx_path)
                    variants["onnxruntime fp32"] = lambda: runner(x)
                except Exception as err:  # noqa: BLE001 - a row that cannot export says why
                    print(f"{model}: no ONNX ({type(err).__name__}: {err})")
                if args.compile:
                    compiled = torch.compile(net)

                    def compiled_bf16(compiled=compiled):
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            return compiled(x)

                    start = time.perf_counter()
                    compiled_bf16()
                    print(f"{model} batch {batch}: torch.compile took {time.perf_counter() - start:.0f} s")
                    variants["torch.compile bf16"] = compiled_bf16
                for name, fn in variants.items():
                    seconds = median_seconds(fn, args.repeats, warmup=2)
                    rows.append({"model": model, "batch": batch, "variant": name, "ms": 1000 * seconds,
                                 "img_s": batch / seconds})
                    print(f"{model} batch {batch} {name}: {1000 * seconds:.0f} ms, {batch / seconds:.1f} img/s", flush=True)
    return rows


def markdown(parity_rows: list[dict], inference_rows: list[dict]) -> str:
    lines = []
    if parity_rows:
        lines += ["| model | precision | GMACs | train.py (img/s) | plain loop (img/s) | ratio | GFLOP/s | of peak |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in parity_rows:
            lines.append(f"| {r['model']} | {r['precision']} | {r['gmacs']:.1f} | {r['lightning_img_s']:.2f} | "
                         f"{r['plain_img_s']:.2f} | {r['ratio']:.3f} | {r['gflop_s']:.0f} | {100 * r['utilisation']:.0f}% |")
    if inference_rows:
        lines += ["", "| model | batch | variant | ms / batch | img/s |", "|---|---:|---|---:|---:|"]
        for r in inference_rows:
            lines.append(f"| {r['model']} | {r['batch']} | {r['variant']} | {r['ms']:.0f} | {r['img_s']:.1f} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="CamVid (SegNet layout)")
    p.add_argument("--models", nargs="+", default=PARITY_MODELS, choices=list(MODELS))
    p.add_argument("--inference-models", nargs="+", default=["fast_scnn", "fpn-lite0"], choices=list(MODELS))
    p.add_argument("--crop", default="352x480", help="train crop HxW")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="optimizer steps per epoch (2 epochs)")
    p.add_argument("--warmup", type=int, default=3, help="steps before the timing window")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="auto")
    p.add_argument("--compile", action="store_true", help="also time torch.compile at inference")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--channels-last-study", action="store_true",
                   help="only compare channels_last on/off in the plain loop, per model")
    p.add_argument("--inference-only", action="store_true")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    np.random.seed(0)
    if args.channels_last_study:
        rows = channels_last_study(args.models, args)
        if args.json:
            args.json.write_text(json.dumps({"channels_last": rows}, indent=2))
        return
    parity_rows = [] if args.inference_only else parity(args.models, args)
    inference_rows = [] if args.no_inference else inference(args.inference_models, args)
    print(markdown(parity_rows, inference_rows))
    if args.json:
        args.json.write_text(json.dumps({"parity": parity_rows, "inference": inference_rows}, indent=2))


if __name__ == "__main__":
    main()
