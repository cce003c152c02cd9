"""Wall-clock budget and validation cadence for ``trainer.fit``.

``--max-time T`` is a budget of wall-clock time for the whole of ``fit``: training steps, data
loading, the periodic validations and checkpoint writes all count. Training stops at the first step
that ends after T; one final validation of the last weights then always runs (it is not counted).
The LR schedule reads ``WallClockBudget.fraction`` (see ``drivseg.schedule``), so the LR reaches its
final value when the budget ends whatever the machine's speed. The time used is saved in the
checkpoints, so a run resumed with a larger budget continues the same clock.

``--val-every N`` validates every N epochs; ``--val-every 5m`` at the first epoch end at least 5
minutes after the previous validation. The last epoch (or the step the budget ends at) is always
validated, so the best checkpoint and the results see the final weights.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import pytorch_lightning as pl

from drivseg.durations import Cadence

# check_val_every_n_epoch value meaning "not this epoch" (Lightning has no switch for it)
NEVER = 10**9


def now() -> float:
    """The clock budgets and cadences read (monotonic seconds); tests replace it with a fake clock."""
    return time.monotonic()


class WallClockBudget(pl.Callback):
    """Measures fit time (and its train / data / val split), ends training when ``seconds`` are used.

    Args:
        seconds: the budget; None: no budget (times are still measured for ``results.json``).
        clock: seconds as a float (default: ``now``, which tests can replace with a fake clock).
    """

    def __init__(self, seconds: Optional[float], clock: Optional[Callable[[], float]] = None) -> None:
        self.seconds = seconds
        self.clock = clock or (lambda: now())
        self.elapsed = 0.0  # fit seconds used, including those of earlier (resumed) runs
        self.split = {"train_seconds": 0.0, "data_seconds": 0.0, "val_seconds": 0.0}
        self.stopped_by_budget = False
        self._mark: Optional[float] = None  # clock at the last tick while fit runs
        self._batch_start: Optional[float] = None
        self._batch_end: Optional[float] = None
        self._val_start: Optional[float] = None

    # ------------------------------------------------------------------ clock
    def tick(self) -> float:
        """Add the time since the last tick to ``elapsed``; returns ``elapsed``."""
        if self._mark is not None:
            now = self.clock()
            self.elapsed += now - self._mark
            self._mark = now
        return self.elapsed

    def fraction(self) -> float:
        """Fraction of the budget used, in [0, 1]; 0 without a budget."""
        if not self.seconds:
            return 0.0
        return min(1.0, self.tick() / self.seconds)

    @property
    def spent(self) -> bool:
        return bool(self.seconds) and self.elapsed >= self.seconds

    def timing(self) -> dict:
        """Seconds of fit: total, and the train / data loading / validation parts (what is left is
        checkpointing, logging and loop overhead)."""
        total = self.tick()
        parts = {k: round(v, 2) for k, v in self.split.items()}
        return {"fit_seconds": round(total, 2), **parts,
                "other_seconds": round(max(0.0, total - sum(self.split.values())), 2),
                "budget_seconds": self.seconds, "stopped_by_budget": self.stopped_by_budget}

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer, pl_module) -> None:
        self._mark = self.clock()
        self._batch_end = self._mark

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._batch_end = self.clock()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = self.clock()
        if self._batch_end is not None:
            self.split["data_seconds"] += now - self._batch_end
        self._batch_start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self.clock()
        if self._batch_start is not None:
            self.split["train_seconds"] += now - self._batch_start
        self._batch_end = now
        if self.seconds and self.tick() >= self.seconds and not trainer.should_stop:
            self.stopped_by_budget = True
            trainer.should_stop = True

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            self._val_start = self.clock()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and self._val_start is not None:
            now = self.clock()
            self.split["val_seconds"] += now - self._val_start
            self._val_start = None
            self._batch_end = now  # the next batch's wait is not data loading

    def on_train_end(self, trainer, pl_module) -> None:
        self.tick()
        self._mark = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        self.tick()
        return {"elapsed": self.elapsed, "split": dict(self.split)}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed = float(state.get("elapsed", 0.0))
        self.split.update(state.get("split", {}))


class ValidationCadence(pl.Callback):
    """Decides, at the end of every train batch, whether this epoch ends with a validation.

    Lightning reads ``trainer.check_val_every_n_epoch`` each time it considers validating; setting it
    to 1 or to a never-matching value per epoch gives any cadence while keeping Lightning's own
    validation loop (checkpoints, logging, DDP sync). It must come after ``WallClockBudget`` in the
    callback list, so a budget stop at this step is seen.
    """

    def __init__(self, cadence: Cadence, clock: Optional[Callable[[], float]] = None) -> None:
        self.cadence = cadence
        self.clock = clock or (lambda: now())
        self._last_val: Optional[float] = None

    def due(self, trainer: pl.Trainer, last_batch: bool) -> bool:
        if trainer.should_stop:
            return True  # the budget ended (or something else stopped the run): validate the final weights
        if not last_batch:
            return False
        epoch = trainer.current_epoch + 1  # epochs completed once this one ends
        if trainer.max_epochs is not None and epoch >= trainer.max_epochs:
            return True
        if self.cadence.seconds is not None:
            return self.clock() - self._last_val >= self.cadence.seconds
        return epoch % self.cadence.epochs == 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_val = self.clock()
        trainer.check_val_every_n_epoch = NEVER

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        trainer.check_val_every_n_epoch = 1 if self.due(trainer, last) else NEVER

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            self._last_val = self.clock()
