"""Learning-rate schedules that run on the fraction of the run completed, not on a step count.

A run's *progress* is a number in [0, 1]: the fraction of the optimizer steps of ``--epochs`` done
or, with a wall-clock budget (``--max-time``), the larger of that and the fraction of the budget
used. Decaying schedules are functions of progress, so a budgeted run ends with the LR at its final
value when the budget ends, however fast the machine is. Warmup is counted in steps (it must happen
in a known number of updates, whatever the clock says).

    poly      lr * (1 - t) ** 0.9            t: progress after warmup, rescaled to [0, 1]
    cosine    lr * (1 + cos(pi t)) / 2
    onecycle  cosine up from lr / 25 to lr over the first ``pct`` of progress (the warmup, 0.3 by
              default), then cosine down to lr / 25e4 (the LR part of torch's OneCycleLR)
    none      constant after warmup
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler

from drivseg.errors import ConfigError

SCHEDULERS = ("poly", "cosine", "onecycle", "none")
ONECYCLE_START_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4
ONECYCLE_DEFAULT_PCT = 0.3

# step -> progress in [0, 1]
ProgressFn = Callable[[int], float]


def step_progress(total_steps: int) -> ProgressFn:
    """Progress by steps only: ``step / total_steps``."""
    return lambda step: min(1.0, step / max(1, total_steps))


class ProgressLR(LRScheduler):
    """Per-step LR factor from the run's progress (see the module docstring).

    ``progress`` is read at every ``step()``; it is not part of the state dict (it is rebuilt by the
    trainer on resume), everything else is, so a resumed run continues the same curve.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        name: str,
        progress: ProgressFn,
        warmup_steps: int = 0,
        onecycle_pct: Optional[float] = None,
    ) -> None:
        if name not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
        self.name = name
        self.progress = progress
        self.warmup_steps = int(warmup_steps)
        self.onecycle_pct = ONECYCLE_DEFAULT_PCT if onecycle_pct is None else float(onecycle_pct)
        # progress at the end of warmup: the decay starts from there (set when warmup ends)
        self.decay_start = 0.0
        super().__init__(optimizer)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "progress")}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "progress"})

    def factor(self, step: int, progress: float) -> float:
        """LR multiplier for the update with index ``step`` taken at ``progress``."""
        if self.name == "onecycle":
            return onecycle_factor(progress, self.onecycle_pct)
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if step == self.warmup_steps:
            self.decay_start = progress if self.warmup_steps else 0.0
        t = min(1.0, max(0.0, (progress - self.decay_start) / max(1e-12, 1.0 - self.decay_start)))
        if self.name == "poly":
            return (1.0 - t) ** 0.9
        if self.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    def get_lr(self) -> list[float]:
        step = self.last_epoch  # LRScheduler counts steps in last_epoch
        f = self.factor(step, self.progress(step))
        return [base * f for base in self.base_lrs]


def onecycle_factor(progress: float, pct: float) -> float:
    """LR / max LR of the one-cycle policy at ``progress``: cosine up over ``pct``, then down."""
    start = 1.0 / ONECYCLE_START_DIV
    end = start / ONECYCLE_FINAL_DIV
    if progress < pct:
        return _cos_between(start, 1.0, progress / pct)
    return _cos_between(1.0, end, min(1.0, (progress - pct) / max(1e-12, 1.0 - pct)))


def _cos_between(a: float, b: float, t: float) -> float:
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    total_steps: int,
    warmup_steps: int,
    max_lr: float = 0.0,
    progress: Optional[ProgressFn] = None,
) -> Optional[ProgressLR]:
    """The per-step schedule; ``None`` for a constant LR without warmup.

    ``progress`` defaults to steps over ``total_steps``; a budgeted run passes the budget's clock.
    ``max_lr`` is the optimizer's LR (kept for the call signature of older code).
    """
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
    if name == "none" and not warmup_steps:
        return None
    pct = warmup_steps / total_steps if (name == "onecycle" and warmup_steps) else None
    return ProgressLR(optimizer, name, progress or step_progress(total_steps), warmup_steps, pct)
