"""The benchmarks measure what they say: parameters and MACs by hand (one-conv net), and the parity
benchmark's split of a training step into computation and the loop's own cost, and the class-id
benchmark's ratio."""

from __future__ import annotations

import argparse
import time

import numpy as np
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
    args = argparse.Namespace(precision="32", crop="32x64", repeats=2, noise_floor=True, sequential=True)
    [row] = throughput.parity(["fast_scnn"], args)
    assert row["a"] == "plain loop, again"
    assert row["ratios"] == [4.0 / 5.0, 4.0 / 5.0] and row["ratio"] == pytest.approx(0.8)
    assert "| plain loop, again (img/s) |" in throughput.markdown([row], [])


class FakeClock(StepClock):
    """A ``StepClock`` whose steps are sleeps, with the computation of each given, not timed."""

    def step(self, seconds: float, compute: float) -> None:
        time.sleep(seconds)
        self.times.append(time.perf_counter())
        self.compute.append(compute)


def test_turn_takers_run_one_window_at_a_time_in_order_and_time_each() -> None:
    import threading

    from benchmarks.turns import TurnTaker

    events = {"a": threading.Event(), "b": threading.Event()}
    log: list[str] = []  # who ran each step, in order
    sides = {side: TurnTaker(events, side, warmup=2, window=3, windows=2, batch=4) for side in "ab"}

    def run(side: str, seconds: float) -> None:
        clock, turn = FakeClock(), sides[side]
        turn.begin()
        while True:
            log.append(side)
            clock.step(seconds, compute=seconds / 2)
            if turn.step_done(clock):
                return

    threads = [threading.Thread(target=run, args=("a", 0.02)), threading.Thread(target=run, args=("b", 0.01))]
    for t in threads[::-1]:  # b starts first: a still goes first, once b is ready
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert "".join(log) == "aa" + "bb" + "aaa" + "bbb" + "aaa" + "bbb"
    a, b = sides["a"].windows, sides["b"].windows
    assert len(a) == len(b) == 2
    # back to back and never at once: each window starts after the other side's previous one ended
    assert a[0]["end"] <= b[0]["start"] and b[0]["end"] <= a[1]["start"] and a[1]["end"] <= b[1]["start"]
    for windows, seconds in ((a, 0.02), (b, 0.01)):
        for w in windows:
            assert w["img_s"] == pytest.approx(4 * 3 / (w["end"] - w["start"]))
            assert seconds <= 1 / (w["img_s"] / 4) < seconds + 0.02  # a sleep never ends early
            assert w["compute_s"] == pytest.approx(seconds / 2)
            assert w["rest_s"] == pytest.approx(4 / w["img_s"] - seconds / 2)


def test_a_turn_taker_whose_peer_has_exited_stops_waiting_with_the_reason() -> None:
    import threading

    from benchmarks.turns import TurnTaker

    events = {"a": threading.Event(), "b": threading.Event()}
    turn = TurnTaker(events, "a", warmup=1, window=1, windows=1, batch=1, peer_alive=lambda: False)
    with pytest.raises(RuntimeError, match="side b has exited"):
        turn.begin()


def test_interleaved_parity_runs_train_py_and_the_plain_loop_in_turns(tiny_camvid, tmp_path) -> None:
    from benchmarks.throughput import interleaved

    args = argparse.Namespace(data_root=tiny_camvid, crop="32x64", batch=2, workers=0, steps=3, warmup=1,
                              window_steps=2, windows=3, channels_last="off", noise_floor=False)
    a, b = interleaved("fast_scnn", args, "32", tmp_path / "run")
    assert len(a) == len(b) == 3
    # two processes, one clock: a's window i, then b's, then a's window i + 1, never at once
    for i in range(3):
        assert a[i]["end"] <= b[i]["start"]
        if i:
            assert b[i - 1]["end"] <= a[i]["start"]
    assert all(w["img_s"] > 0 and w["compute_s"] > 0 for w in a + b)
    row = parity_row("fast_scnn", "32", 1e9, a, b, {"32": 1e12})
    assert len(row["ratios"]) == 3


def test_the_ratio_interval_resamples_window_pairs() -> None:
    from benchmarks.throughput import ratio_interval

    plain = [10.0, 12.0, 9.0, 11.0, 10.5, 9.5]
    # (a) exactly 0.9 of (b) in every pair: whichever pairs a resample draws, the ratio is 0.9
    low, high = ratio_interval([0.9 * x for x in plain], plain)
    assert low == pytest.approx(0.9) and high == pytest.approx(0.9)
    # the same medians with a spread within pairs: the interval holds the ratio of medians and widens
    rng = np.random.default_rng(1)
    noisy = [0.9 * x * f for x, f in zip(plain * 3, rng.uniform(0.8, 1.2, 18))]
    low, high = ratio_interval(noisy, plain * 3)
    assert low < np.median(noisy) / np.median(plain * 3) < high and high - low > 0.05
    assert ratio_interval([1.0] * 4, [1.0] * 4) is None  # four pairs are too few to resample


def test_interleaved_parity_names_the_side_that_failed(tiny_camvid, tmp_path) -> None:
    from benchmarks.throughput import interleaved

    args = argparse.Namespace(data_root=tmp_path / "missing", crop="32x64", batch=2, workers=0, steps=3,
                              warmup=1, window_steps=2, windows=3, channels_last="off", noise_floor=False)
    with pytest.raises(RuntimeError, match=r"side [ab] \((train\.py|plain)\) failed: .*missing"):
        interleaved("fast_scnn", args, "32", tmp_path / "run")
