"""Training throughput of the full train.py pipeline against a plain PyTorch loop, FLOP utilisation,
and the inference side (eager fp32 / bf16, channels_last, ONNX Runtime, torch.compile).

    python benchmarks/throughput.py --data-root ../shared/data/camvid --json throughput.json
    python benchmarks/throughput.py --models unet-r18 fast_scnn --repeats 3 --steps 12
    python benchmarks/throughput.py --inference-only --models fast_scnn fpn-lite0
    python benchmarks/throughput.py --models unet-lite0 --no-inference --noise-floor  # plain loop vs itself

(a) ``train.train`` itself (Lightning, our DataModule with workers and augmentation, the confusion
matrix metric, logging, per-epoch checkpoints) and (b) a plain loop over the same DataLoader with the
same network, loss, optimizer, batch and precision. By default the two run at the same time in two
processes and take turns on the machine, ``--window-steps`` optimizer steps each, ``--windows``
timed turns per side after a ``--warmup`` turn (``benchmarks/turns.py``), so a change in the load of
a shared machine reaches both sides' windows alike; the table gives the medians over the windows
and the ratio (a)/(b), and (a) pays an epoch-end checkpoint every ``--steps`` steps.
``--sequential`` instead times whole runs one after the other, ``--repeats`` times, alternating
which goes first, over the same window of steps after a warm-up (two epochs, so (a) pays one
epoch-end checkpoint in it).
FLOP utilisation: 3 x forward MACs x 2 FLOPs per image (forward + backward ~ 3 forwards), divided by
this machine's matmul peak measured in the same run (a large fp32 / bf16 ``torch.mm``).

With ``--sequential`` the ratio compares two runs timed one after the other, so a machine shared
with other jobs moves it by several percent either way. Each step is therefore also split, inside
both loops, into the computation both must do (normalising the batch on the device, the network's
and the loss's forward, the backward, ``optimizer.step``) and the rest (waiting for data, and in
(a) Lightning's loop, hooks, logging and the checkpoint). The rest of (a) minus the rest of (b) is
what the pipeline adds per step, measured without the noise of comparing two windows of computation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks.arch_table import median_seconds  # noqa: E402
from benchmarks.turns import TurnTaker  # noqa: E402

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


class StepClock:
    """Per optimizer step: the wall-clock time at its end, and the seconds spent inside the work
    every training loop must do (normalising the batch, forward of the network and of the loss,
    backward, optimizer step).

    ``attach`` times the forward of the network and of the loss through their own hooks, and ends the
    optimizer step's time with its post-hook, so the same clock measures the Lightning loop and the
    plain one. The caller times the batch's normalisation with ``time``, brackets the backward, calls
    ``start`` right before the parameter update (the optimizer's pre-hook would not do: Lightning
    calls ``optimizer.step(closure)``, which runs the forward and the backward inside it) and calls
    ``end_step``; ``backward_and_update`` does the last three in a hand-written loop.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.compute: list[float] = []
        self._current = 0.0
        self._started: Optional[float] = None

    def start(self, *_) -> None:
        self._started = time.perf_counter()

    def stop(self, *_) -> None:
        if self._started is not None:
            self._current += time.perf_counter() - self._started
            self._started = None

    def time(self, fn: Callable, *args):
        """``fn(*args)``, its seconds counted as computation."""
        self.start()
        try:
            return fn(*args)
        finally:
            self.stop()

    def end_step(self) -> None:
        self.times.append(time.perf_counter())
        self.compute.append(self._current)
        self._current = 0.0

    def attach(self, net: torch.nn.Module, loss: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        for module in (net, loss):
            module.register_forward_pre_hook(self.start)
            module.register_forward_hook(self.stop)
        optimizer.register_step_post_hook(self.stop)

    def backward_and_update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """The end of a hand-written step: the backward and the update timed as computation."""
        self.start()
        loss.backward()
        self.stop()
        self.start()
        optimizer.step()  # stopped by the post-hook
        self.end_step()

    def window(self, warmup: int, batch: int) -> dict:
        """Images/s from the end of step ``warmup`` to the end of the last step; the seconds per step
        of that window inside the computation and outside it (the mean, and the median step's,
        which leaves out what happens in only some steps: the epoch end, an occasional slow step)."""
        return self.span(self.times[warmup - 1], len(self.times) - warmup, batch)

    def span(self, start: float, steps: int, batch: int) -> dict:
        """``window``'s figures for the last ``steps`` steps, timed from ``start`` (a
        ``time.perf_counter`` value) to the end of the last step."""
        ends, compute = self.times[-steps:], self.compute[-steps:]
        seconds, inside = ends[-1] - start, sum(compute)
        rests = [end - begin - c for begin, end, c in zip([start, *ends[:-1]], ends, compute)]
        return {"img_s": batch * steps / seconds, "compute_s": inside / steps,
                "rest_s": (seconds - inside) / steps, "rest_median_s": statistics.median(rests)}


class LightningStepClock(pl.Callback):
    """``StepClock`` inside ``train.train``: attached when training starts, the batch's normalisation
    timed around the module's ``inputs``, backward and parameter update started by Lightning's hooks,
    a step ended at every train batch end (validation steps are not counted)."""

    def __init__(self) -> None:
        self.clock = StepClock()

    def on_train_start(self, trainer, pl_module) -> None:
        self.clock.attach(pl_module.net, pl_module.loss, trainer.optimizers[0])
        inputs = pl_module.inputs

        def timed_inputs(batch: dict):
            return self.clock.time(inputs, batch) if pl_module.training else inputs(batch)

        pl_module.inputs = timed_inputs  # an instance attribute: shadows the method for this run only

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.clock.start()

    def on_after_backward(self, trainer, pl_module) -> None:
        self.clock.stop()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.clock.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clock.end_step()


class LightningTurns(LightningStepClock):
    """``LightningStepClock`` that takes turns with another process (``TurnTaker``) and stops the
    run once its windows are timed."""

    def __init__(self, turn: TurnTaker) -> None:
        super().__init__()
        self.turn = turn

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.turn.begin()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.turn.step_done(self.clock):
            trainer.should_stop = True


def train_args(model: str, args: argparse.Namespace, run_dir: Path, precision: str,
               epochs: int = 2) -> list[str]:  # fmt: skip
    arch, encoder, weights = MODELS[model]
    return [
        "--data", "camvid", "--data-root", str(args.data_root), "--arch", arch,
        "--encoder", str(encoder), "--encoder-weights", weights, "--crop-size", args.crop,
        "--scale-range", "1", "1", "--batch-size", str(args.batch), "--num-workers", str(args.workers),
        "--epochs", str(epochs), "--limit-train-batches", str(args.steps), "--limit-val-batches", "2",
        "--val-every", "1000", "--logger", "csv", "--precision", precision, "--no-report",
        "--output-dir", str(run_dir), "--overwrite", "--optimizer", "adamw", "--loss", "ce",
        # speed does not depend on the LR, but a NaN loss stops train.py: at the default 2e-3 a
        # from-scratch Fast-SCNN reaches one at step 21 of bf16 training, so --steps 40 failed
        "--lr", "1e-4",
        "--channels-last", args.channels_last,
    ]  # fmt: skip


def lightning_rate(model: str, args, run_dir: Path, precision: str, extra_callbacks=(),
                   turn: Optional[TurnTaker] = None):  # fmt: skip
    """``StepClock.window`` of ``train.train`` on ``model``; with ``turn``, its timed windows."""
    import train

    meter = LightningStepClock() if turn is None else LightningTurns(turn)
    epochs = 2 if turn is None else turn.epochs(args.steps)
    argv = train_args(model, args, run_dir, precision, epochs)
    assert train.train(argv, extra_callbacks=[meter, *extra_callbacks]) == 0
    return meter.clock.window(args.warmup, args.batch) if turn is None else turn.windows


def plain_rate(model: str, args, precision: str, turn: Optional[TurnTaker] = None):
    """The same network, data, loss, optimizer and precision in a hand-written loop; with ``turn``,
    taking turns with another process and returning its timed windows."""
    from drivseg.cli import parse_config
    from drivseg.data import get_source
    from drivseg.experiment import build_datamodule, build_module, normalization
    from drivseg.module import split_outputs

    cfg = parse_config(train_args(model, args, Path(tempfile.mkdtemp()), precision))
    pl.seed_everything(cfg.seed, verbose=False)
    source = get_source(cfg.data, cfg.data_root)
    dm = build_datamodule(cfg, source, Path(cfg.data_root))
    dm.setup()
    mean, std = normalization(cfg.encoder, cfg.encoder_weights)
    module = build_module(cfg, dm.label_spec, None, mean, std)  # the same network and loss objects
    net, loss_fn = module.net, module.loss
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = precision == "bf16-mixed"
    clock = StepClock()
    clock.attach(net, loss_fn, optimizer)
    net.train()
    loader = dm.train_dataloader()  # once: its workers persist across epochs, as in train.py
    if turn is not None:
        turn.begin()
    for epoch in range(2 if turn is None else turn.epochs(args.steps)):
        loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i == args.steps:
                break
            images, masks = clock.time(module.inputs, batch)  # what train.py's training_step does first
            # the loss inside autocast too: Lightning's mixed precision wraps the whole training_step
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(split_outputs(net(images))[0], masks)
            optimizer.zero_grad(set_to_none=True)
            clock.backward_and_update(loss, optimizer)
            if turn is not None and turn.step_done(clock):
                return turn.windows
    return clock.window(args.warmup, args.batch)


def run_side(side: str, kind: str, model: str, args, precision: str, run_dir: Path, events: dict, results,
             parent: int) -> None:  # fmt: skip
    """One side of ``interleaved``, in its own process: ``kind`` "train.py" or "plain" taking turns as
    ``side``; puts (side, its windows) or (side, the error) on ``results``."""
    import os

    try:
        turn = TurnTaker(events, side, args.warmup, args.window_steps, args.windows, args.batch,
                         peer_alive=lambda: os.getppid() == parent)
        if kind == "plain":
            windows = plain_rate(model, args, precision, turn)
        else:
            windows = lightning_rate(model, args, run_dir, precision, turn=turn)
        results.put((side, windows))
    except BaseException as err:
        results.put((side, f"{type(err).__name__}: {err}"))
        raise


def interleaved(model: str, args, precision: str, run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(a) ``train.train`` (or, with ``--noise-floor``, the plain loop) and (b) the plain loop, each in
    a fresh process of its own (so neither inherits this one's history: allocations, thread pools,
    earlier models), taking turns every ``--window-steps`` steps (``TurnTaker``); the timed windows
    of each, in order, so window i of (a) and of (b) ran back to back."""
    import multiprocessing
    import os
    import queue

    ctx = multiprocessing.get_context("spawn")
    events, results = {"a": ctx.Event(), "b": ctx.Event()}, ctx.Queue()
    kinds = {"a": "plain" if args.noise_floor else "train.py", "b": "plain"}
    children = {side: ctx.Process(target=run_side, args=(side, kinds[side], model, args, precision, run_dir,
                                                         events, results, os.getpid()))
                for side in kinds}  # fmt: skip
    for child in children.values():
        child.start()
    windows: dict[str, list[dict]] = {}
    try:
        while len(windows) < 2:
            try:
                side, got = results.get(timeout=1.0)
            except queue.Empty:
                failed = [s for s, c in children.items() if c.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"side {failed[0]} ({kinds[failed[0]]}) exited with code "
                                       f"{children[failed[0]].exitcode}: its traceback is above") from None
                continue
            if isinstance(got, str):
                raise RuntimeError(f"side {side} ({kinds[side]}) failed: {got}")
            windows[side] = got
    except BaseException:
        for child in children.values():  # the other side would wait for a turn that will not come
            child.terminate()
        raise
    finally:
        for child in children.values():
            child.join(timeout=60)
            if child.is_alive():
                child.terminate()
    return windows["a"], windows["b"]


def parity(models: list[str], args) -> list[dict]:
    from drivseg.models import build_model
    from drivseg.performance import resolve_precision

    precision = resolve_precision(args.precision, "cpu")[0]
    size = tuple(int(v) for v in args.crop.split("x"))
    peak = {"32": matmul_peak(torch.float32)}
    # only where bf16 is what runs: on a CPU without native bf16 a bf16 matmul is emulated and takes
    # minutes, and its "peak" would describe nothing this benchmark trains with
    if precision == "bf16-mixed":
        peak[precision] = matmul_peak(torch.bfloat16)
    print("matmul peak: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peak.items()), flush=True)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    label = "plain loop, again" if args.noise_floor else "train.py"
    for model in models:
        arch, encoder, _ = MODELS[model]
        macs = forward_macs(build_model(arch, 11, encoder, None), size)

        def rate_a(r: int) -> dict:
            if args.noise_floor:  # the same code on both sides: what is left of the ratio is the machine
                return plain_rate(model, args, precision)
            return lightning_rate(model, args, tmp / f"{model}-{r}", precision)

        if not args.sequential:
            a, b = interleaved(model, args, precision, tmp / model)
            rows.append({**parity_row(model, precision, macs, a, b, peak), "a": label, "windows": len(a)})
            print(f"{model}: {label} {rows[-1]['lightning_img_s']:.2f} img/s, plain "
                  f"{rows[-1]['plain_img_s']:.2f} img/s (medians of {len(a)} windows)", flush=True)
            continue
        a, b = [], []
        for r in range(args.repeats):
            # alternate which goes first, so a drift of the machine's speed favours neither
            if r % 2 == 0:
                a.append(rate_a(r))
                b.append(plain_rate(model, args, precision))
            else:
                b.append(plain_rate(model, args, precision))
                a.append(rate_a(r))
            print(f"{model} repeat {r}: {label} {a[-1]['img_s']:.2f} img/s "
                  f"(rest {1000 * a[-1]['rest_s']:.0f} ms/step), plain {b[-1]['img_s']:.2f} img/s "
                  f"(rest {1000 * b[-1]['rest_s']:.0f} ms/step)", flush=True)
        rows.append({**parity_row(model, precision, macs, a, b, peak), "a": label})
    return rows


def ratio_interval(a_img_s: list[float], b_img_s: list[float], resamples: int = 4000,
                   seed: int = 0) -> Optional[tuple[float, float]]:  # fmt: skip
    """95% bootstrap interval of the ratio of medians (a)/(b), resampling the pairs (a window of (a)
    and the one of (b) that ran right after it, so a slow stretch stays within a pair); None for
    fewer than 5 pairs, too few to resample."""
    if len(a_img_s) < 5:
        return None
    a, b = np.asarray(a_img_s), np.asarray(b_img_s)
    picks = np.random.default_rng(seed).integers(0, len(a), (resamples, len(a)))
    ratios = np.median(a[picks], axis=1) / np.median(b[picks], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def parity_row(model: str, precision: str, macs: float, a: list[dict], b: list[dict], peak: dict) -> dict:
    """Medians over the repeats of (a) ``train.train`` and (b) the plain loop (``StepClock.window``
    dicts), their ratio, the pipeline's own cost per step, and FLOP utilisation of (a)."""

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    def paired_difference(key: str) -> float:
        # per repeat: the pair ran back to back, so their difference is the least disturbed by drift
        return statistics.median(x[key] - y[key] for x, y in zip(a, b))

    ma, mb = median(a, "img_s"), median(b, "img_s")
    a_img_s, b_img_s = [x["img_s"] for x in a], [y["img_s"] for y in b]
    added, added_median_step = paired_difference("rest_s"), paired_difference("rest_median_s")
    plain_step = median(b, "compute_s") + median(b, "rest_s")
    flops = 3 * macs * 2 * ma
    return {"model": model, "precision": precision, "gmacs": macs / 1e9, "lightning_img_s": ma,
            "plain_img_s": mb, "ratio": ma / mb, "ratios": [x / y for x, y in zip(a_img_s, b_img_s)],
            "ratio_interval": ratio_interval(a_img_s, b_img_s), "lightning_runs_img_s": a_img_s,
            "plain_runs_img_s": b_img_s,
            "lightning_compute_s": median(a, "compute_s"), "plain_compute_s": median(b, "compute_s"),
            "lightning_rest_s": median(a, "rest_s"), "plain_rest_s": median(b, "rest_s"),
            "added_s": added, "added_fraction": added / plain_step, "added_median_step_s": added_median_step,
            "gflop_s": flops / 1e9, "utilisation": flops / peak[precision],
            "utilisation_of_fp32_peak": flops / peak["32"]}  # fmt: skip


def channels_last_study(models: list[str], args) -> list[dict]:
    """Plain-loop training images/s with NHWC against NCHW tensors, alternating, per model."""
    from drivseg.performance import resolve_precision

    precision = resolve_precision(args.precision, "cpu")[0]
    rows = []
    for model in models:
        rates: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.repeats):
            for setting in ("off", "on"):
                setting_args = argparse.Namespace(**{**vars(args), "channels_last": setting})
                rates[setting].append(plain_rate(model, setting_args, precision)["img_s"])
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
        lines += [f"| model | precision | GMACs | {parity_rows[0]['a']} (img/s) | plain loop (img/s) | ratio "
                  "| 95% interval | compute s/step (a / b) "
                  "| rest ms/step (a / b) | added by (a) | of it, in a median step | GFLOP/s | of peak |",
                  "|---|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|"]
        for r in parity_rows:
            interval = "{:.3f}-{:.3f}".format(*r["ratio_interval"]) if r["ratio_interval"] else "n/a"
            lines.append(f"| {r['model']} | {r['precision']} | {r['gmacs']:.1f} | {r['lightning_img_s']:.2f} | "
                         f"{r['plain_img_s']:.2f} | {r['ratio']:.3f} | {interval} | {r['lightning_compute_s']:.3f} / "
                         f"{r['plain_compute_s']:.3f} | {1000 * r['lightning_rest_s']:.0f} / {1000 * r['plain_rest_s']:.0f} | "
                         f"{1000 * r['added_s']:.0f} ms ({100 * r['added_fraction']:.1f}%) | "
                         f"{1000 * r['added_median_step_s']:.0f} ms | {r['gflop_s']:.0f} | "
                         f"{100 * r['utilisation']:.0f}% |")
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
    p.add_argument("--repeats", type=int, default=3, help="runs of each side with --sequential; at inference, "
                   "timings per variant")
    p.add_argument("--window-steps", type=int, default=5, help="steps each side runs per turn")
    p.add_argument("--windows", type=int, default=12, help="timed turns per side")
    p.add_argument("--sequential", action="store_true",
                   help="time whole runs one after the other (--repeats pairs) instead of taking turns")
    p.add_argument("--precision", default="auto")
    p.add_argument("--compile", action="store_true", help="also time torch.compile at inference")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--channels-last-study", action="store_true",
                   help="only compare channels_last on/off in the plain loop, per model")
    p.add_argument("--inference-only", action="store_true")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--noise-floor", action="store_true",
                   help="time the plain loop against itself instead of train.py: how far the ratio moves "
                        "on this machine when both sides run the same code")
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
