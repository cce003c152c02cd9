"""The benchmarks measure what they say: parameters and MACs by hand (one-conv net), and the parity
benchmark's split of a training step into computation and the loop's own cost, and the class-id
benchmark's ratio."""

from __future__ import annotations

import argparse
import time

import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn

import benchmarks.class_ids as class_ids_bench
from benchmarks.arch_table import measure
from benchmarks.throughput import StepClock, lightning_rate, parity_row, plain_rate
from drivseg.models import ARCHS
from drivseg.module import SegmentationModule


def test_measure_counts_params_and_macs_by_hand(monkeypatch) -> None:
    monkeypatch.setitem(ARCHS, "one_conv", lambda num_classes, **_: nn.Conv2d(3, num_classes, 3, padding=1))
    row = measure("one_conv", (16, 24), batch=1, repeats=1)
    assert row["params_m"] * 1e6 == 11 * 3 * 3 * 3 + 11
    assert row["gmacs"] * 1e9 == 16 * 24 * 11 * 3 * 3 * 3  # one MAC per output pixel, channel and tap
    assert row["latency_ms"] > 0 and row["train_img_s"] > 0


def test_class_ids_benchmark_times_both_reductions_and_refuses_different_ids(monkeypatch) -> None:
    real = class_ids_bench.class_ids

    def slow(scores):
        time.sleep(0.05)
        return real(scores)

    monkeypatch.setattr(class_ids_bench, "class_ids", slow)
    row = class_ids_bench.measure((1, 3, 4, 5), torch.float32, repeats=3)
    assert row["class_ids_ms"] >= 50 > row["argmax_ms"]
    assert row["speedup"] == pytest.approx(row["argmax_ms"] / row["class_ids_ms"], abs=0.01)
    monkeypatch.setattr(class_ids_bench, "class_ids", lambda scores: real(-scores))  # the argmin
    with pytest.raises(AssertionError, match="differs from argmax"):
        class_ids_bench.measure((1, 3, 4, 5), torch.float32, repeats=1)


class Sleep(nn.Module):
    """A module whose forward takes at least ``seconds`` (and returns its input, or a loss)."""

    def __init__(self, seconds: float, loss: bool = False) -> None:
        super().__init__()
        self.seconds, self.loss = seconds, loss
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x, target=None):
        time.sleep(self.seconds)
        return (x * self.weight).sum() if self.loss else x * self.weight


def test_step_clock_counts_normalising_forward_loss_backward_and_step_as_compute_and_the_rest_apart() -> None:
    net, loss_fn = Sleep(0.03), Sleep(0.01, loss=True)
    optimizer = torch.optim.SGD([*net.parameters(), *loss_fn.parameters()], lr=0.1)
    clock = StepClock()
    clock.attach(net, loss_fn, optimizer)
    for _ in range(4):
        time.sleep(0.02)  # "data loading": outside the computation
        x = clock.time(lambda: time.sleep(0.01) or torch.ones(2))  # "normalising": inside it
        clock.backward_and_update(loss_fn(net(x)), optimizer)
    window = clock.window(warmup=1, batch=2)
    # sleeps never end early; the slack bounds what timing and hooks may add on a busy machine
    assert 0.05 <= window["compute_s"] < 0.05 + 0.03
    assert 0.02 <= window["rest_s"] < 0.02 + 0.03 and 0.02 <= window["rest_median_s"] < 0.02 + 0.03
    assert window["img_s"] == pytest.approx(2 / (window["compute_s"] + window["rest_s"]), rel=1e-6)


class SlowHook(pl.Callback):
    """Work the Lightning loop does that the plain loop does not."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(0.1)


def test_parity_attributes_what_only_the_lightning_loop_does_to_it(tiny_camvid, tmp_path, monkeypatch):
    # a parameter update 0.1 s slower in both loops: Lightning runs the forward and backward inside
    # optimizer.step(closure), and the update after them must still count as computation there
    # once any AdamW exists, AdamW.step is torch's hook-running wrapper: the sleep must come before
    # the post-hooks (which end the clock's update), so wrap the step inside it and let torch wrap ours
    step = torch.optim.AdamW.step
    update = step.__wrapped__ if getattr(step, "hooked", False) else step

    def slow_update(self, *args, **kwargs):
        result = update(self, *args, **kwargs)
        time.sleep(0.1)
        return result

    # and a batch normalisation 0.2 s slower in both: work both loops do, so computation in both
    inputs = SegmentationModule.inputs

    def slow_inputs(self, batch):
        time.sleep(0.2)
        return inputs(self, batch)

    monkeypatch.setattr(torch.optim.AdamW, "step", slow_update)
    monkeypatch.setattr(SegmentationModule, "inputs", slow_inputs)
    args = argparse.Namespace(data_root=tiny_camvid, crop="32x64", batch=2, workers=0, steps=4, warmup=2,
                              channels_last="off")
    a = [lightning_rate("unet-r18", args, tmp_path / "run", "32", extra_callbacks=[SlowHook()])]
    b = [plain_rate("unet-r18", args, "32")]
    row = parity_row("unet-r18", "32", 1e9, a, b, {"32": 1e12})
    assert a[0]["compute_s"] >= 0.3 and b[0]["compute_s"] >= 0.3
    assert b[0]["rest_median_s"] < 0.1  # the slow update is not in the plain loop's rest
    assert 0.5 < a[0]["compute_s"] / b[0]["compute_s"] < 2
    # the 0.1 s per step only the Lightning loop had shows up in its rest, the slow update and
    # normalisation do not
    # (Lightning's own loop adds some 10-20 ms here; the mean also holds the epoch-end checkpoint)
    assert 0.1 <= row["added_median_step_s"] < 0.18
    assert row["added_s"] >= 0.1
    assert row["ratio"] < 1


def test_the_noise_floor_times_the_plain_loop_against_itself(monkeypatch) -> None:
    import benchmarks.throughput as throughput

    def no_lightning(*args, **kwargs):
        raise AssertionError("--noise-floor ran train.py")

    speeds = iter([4.0, 5.0, 5.0, 4.0])  # a, b, then b, a: the order alternates between repeats
    monkeypatch.setattr(throughput, "lightning_rate", no_lightning)
    monkeypatch.setattr(throughput, "plain_rate", lambda *a: {"img_s": next(speeds), "compute_s": 1.0,
                                                              "rest_s": 0.01, "rest_median_s": 0.01})
    monkeypatch.setattr(throughput, "matmul_peak", lambda dtype: 1e11)
    monkeypatch.setattr(throughput, "forward_macs", lambda net, size: 1e9)
    args = argparse.Namespace(precision="32", crop="32x64", repeats=2, noise_floor=True)
    [row] = throughput.parity(["fast_scnn"], args)
    assert row["a"] == "plain loop, again"
    assert row["ratios"] == [4.0 / 5.0, 4.0 / 5.0] and row["ratio"] == pytest.approx(0.8)
    assert "| plain loop, again (img/s) |" in throughput.markdown([row], [])
