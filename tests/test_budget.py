"""Wall-clock budgets on a fake clock: the LR follows the fraction of the budget used and ends at 0,
slower epochs change nothing about that, the final validation always happens, the train / data /
val split adds up, and ``--val-every`` in minutes. Plus durations and ``--precision auto``."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from drivseg.budget import ValidationCadence, WallClockBudget
from drivseg.durations import Cadence, parse_cadence, parse_duration
from drivseg.errors import ConfigError
from drivseg.losses import build_loss
from drivseg.module import SegmentationModule
from drivseg.performance import resolve_channels_last, resolve_precision

CLASSES = ["a", "b", "c"]
LR = 0.1


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeTime(pl.Callback):
    """Advances the fake clock as if loading a batch took ``data`` s, a step ``train`` s and a
    validation ``val`` s. Placed before the budget in the callback list, so the budget sees it."""

    def __init__(self, clock: FakeClock, train, data: float = 0.0, val: float = 0.0) -> None:
        self.clock, self.train, self.data, self.val = clock, train, data, val
        self.lrs: list[float] = []
        self.validated_at: list[int] = []  # global step of every validation during fit

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.clock.t += self.data

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        # inside the step, as real compute time is: before the LR scheduler steps
        self.clock.t += self.train(trainer.global_step) if callable(self.train) else self.train

    def on_validation_end(self, trainer, pl_module) -> None:
        self.clock.t += self.val
        if trainer.state.fn == "fit":
            self.validated_at.append(trainer.global_step)


def _samples(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randn(3, 8, 8, generator=g), "mask": torch.randint(0, 3, (8, 8), generator=g), "name": f"{i}.png"}
        for i in range(n)
    ]


def _fit(fake: FakeTime, clock: FakeClock, budget_s, cadence: Cadence, max_epochs: int, n: int = 8) -> tuple:
    torch.manual_seed(0)
    module = SegmentationModule(nn.Conv2d(3, 3, 1), build_loss("ce"), CLASSES, optimizer="sgd", lr=LR, scheduler="poly")
    budget = WallClockBudget(budget_s, clock=clock)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[fake, budget, ValidationCadence(cadence, clock=clock)],
    )  # fmt: skip
    data = _samples(n)
    trainer.fit(module, DataLoader(data, batch_size=2), DataLoader(data[:2], batch_size=2))
    return trainer, budget


def test_lr_follows_the_budget_fraction_and_reaches_zero_when_it_ends() -> None:
    clock = FakeClock()
    fake = FakeTime(clock, train=8.0, data=2.0)  # 10 s per step: a 100 s budget is 10 steps
    trainer, budget = _fit(fake, clock, 100.0, Cadence(epochs=1000), max_epochs=1000)

    assert trainer.global_step == 10 and budget.stopped_by_budget
    # the LR of the step taken after k steps is lr * (1 - 10k / 100) ** 0.9, whatever --epochs says
    assert fake.lrs[0] == pytest.approx(LR)
    assert fake.lrs[5] == pytest.approx(LR * 0.5**0.9)  # half the budget used
    assert fake.lrs[9] == pytest.approx(LR * 0.1**0.9)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # 100 %: at zero
    timing = budget.timing()
    assert timing["train_seconds"] == pytest.approx(80.0) and timing["data_seconds"] == pytest.approx(20.0)


def test_epochs_slower_than_expected_still_end_at_lr_zero() -> None:
    clock = FakeClock()
    # steps get slower as the run goes on (thermal throttling, a busy neighbour): 4 s, then 25 s
    fake = FakeTime(clock, train=lambda step: 4.0 if step < 10 else 25.0)
    trainer, budget = _fit(fake, clock, 120.0, Cadence(epochs=1000), max_epochs=1000)

    assert budget.stopped_by_budget and trainer.global_step == 14  # 10 x 4 s + 4 x 25 s >= 120 s
    assert all(a >= b for a, b in zip(fake.lrs, fake.lrs[1:]))  # monotone decay
    assert fake.lrs[10] == pytest.approx(LR * (1 - 40 / 120) ** 0.9)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_the_final_validation_happens_on_the_last_weights_and_counts_as_val_time() -> None:
    clock = FakeClock()
    fake = FakeTime(clock, train=10.0, val=5.0)
    # 4 steps per epoch; the budget ends after step 6, in the middle of epoch 2, and --val-every
    # 1000 would never validate: the stop does
    trainer, budget = _fit(fake, clock, 55.0, Cadence(epochs=1000), max_epochs=1000)
    assert trainer.global_step == 6
    assert fake.validated_at == [6]
    assert budget.timing()["val_seconds"] == pytest.approx(5.0)


def test_epochs_cap_a_budgeted_run_and_the_lr_follows_whichever_ends_first() -> None:
    clock = FakeClock()
    fake = FakeTime(clock, train=1.0)  # a fast machine: 2 epochs of 4 steps use 8 s of a 1000 s budget
    trainer, budget = _fit(fake, clock, 1000.0, Cadence(epochs=1), max_epochs=2)
    assert trainer.global_step == 8 and not budget.stopped_by_budget
    assert fake.lrs[4] == pytest.approx(LR * 0.5**0.9)  # step progress (4 / 8) leads
    assert fake.validated_at == [4, 8]


def test_val_every_minutes_validates_at_the_first_epoch_end_after_the_interval_and_at_the_end() -> None:
    clock = FakeClock()
    fake = FakeTime(clock, train=60.0)  # 4 steps of a minute: 4-minute epochs
    trainer, _ = _fit(fake, clock, None, parse_cadence("5m", "--val-every"), max_epochs=5)
    # epoch ends at 4, 8, 12, 16, 20 min: 8 is the first >= 5 min after the start, 16 the next
    # >= 5 min after 8, and the last epoch always validates
    assert fake.validated_at == [8, 16, 20]


def test_val_every_n_epochs() -> None:
    clock = FakeClock()
    fake = FakeTime(clock, train=1.0)
    _fit(fake, clock, None, parse_cadence("2", "--val-every"), max_epochs=5)
    assert fake.validated_at == [8, 16, 20]


@pytest.mark.parametrize(
    "text, seconds",
    [("00:20:00", 1200), ("20m", 1200), ("90s", 90), ("1.5h", 5400), ("02:00:00", 7200), (None, None), ("none", None)],
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text, "--max-time") == seconds


@pytest.mark.parametrize("text", ["20 minutes", "1:2:3", "-5m", "0s"])
def test_bad_durations_say_what_is_expected(text) -> None:
    with pytest.raises(ConfigError, match="--max-time"):
        parse_duration(text, "--max-time")


@pytest.mark.parametrize(
    "flags, expected",
    [({"avx512_bf16", "avx2"}, "bf16-mixed"), ({"amx_bf16"}, "bf16-mixed"), ({"avx2", "avx512f"}, "32"), (set(), "32")],
)
def test_precision_auto_picks_bf16_only_where_the_cpu_has_it(flags, expected) -> None:
    precision, why = resolve_precision("auto", "cpu", flags)
    assert precision == expected and why
    assert resolve_precision("16-mixed", "cpu", flags)[0] == "16-mixed"  # an explicit choice is kept


def test_channels_last_auto_follows_the_measured_families() -> None:
    assert resolve_channels_last("auto", "unet") and resolve_channels_last("auto", "fast_scnn")
    assert not resolve_channels_last("auto", "segmenter")  # measured slower: transformers stay contiguous
    assert resolve_channels_last("on", "segmenter") and not resolve_channels_last("off", "unet")
