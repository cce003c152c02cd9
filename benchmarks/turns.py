"""Two training loops in two processes taking turns on the machine, a short window of steps each.

Timing one loop for a whole run and then the other compares two stretches of a shared machine that
are minutes apart, and its load changes in between by more than the few percent being measured.
Taking turns every few steps puts both loops into the same stretch: a slow minute slows the windows
of both. Only one side computes at a time: the other waits on an event, its data workers stop once
their prefetch queue is full, so neither takes cores from the other's window.

The order: a warms up, b warms up, then a, b, a, b, ... one window each, b's last window last.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from benchmarks.throughput import StepClock


class TurnTaker:
    """One side's part in the turns: call ``begin`` before the first step and ``step_done`` after
    every optimizer step (once its ``StepClock`` has ended the step); ``windows`` holds one
    ``StepClock.span`` dict per timed window, plus its start and end.

    ``events`` is a dict ``{"a": Event, "b": Event}`` shared by both sides (``multiprocessing``
    events: the two sides are processes); an event set means that side may run.
    """

    def __init__(self, events: dict[str, Any], side: str, warmup: int, window: int, windows: int, batch: int,
                 peer_alive: Callable[[], bool] = lambda: True, timeout: float = 1800.0) -> None:  # fmt: skip
        if side not in ("a", "b"):
            raise ValueError(f"side is 'a' or 'b', got {side!r}")
        if warmup < 1 or window < 1 or windows < 1:
            raise ValueError(f"warmup, window and windows must be >= 1, got {warmup}, {window}, {windows}")
        self.events, self.side, self.other = events, side, "b" if side == "a" else "a"
        self.warmup, self.window, self.wanted, self.batch = warmup, window, windows, batch
        self.peer_alive, self.timeout = peer_alive, timeout
        self.windows: list[dict] = []
        self._warm = False
        self._count = 0
        self._start = 0.0

    def epochs(self, steps_per_epoch: int) -> int:
        """Epochs of ``steps_per_epoch`` that hold the warm-up and every window."""
        return -(-(self.warmup + self.window * self.wanted) // steps_per_epoch)

    def begin(self) -> None:
        """Wait for the first turn. b, once ready, hands a its first turn."""
        if self.side == "b":
            self.events["a"].set()
        self._wait()

    def _wait(self) -> None:
        waited = 0.0
        while not self.events[self.side].wait(1.0):
            waited += 1.0
            alive = self.peer_alive()
            if not alive or waited >= self.timeout:
                state = "is stuck" if alive else "has exited"
                raise RuntimeError(f"side {self.side} waited {waited:.0f} s for side {self.other}'s turn to "
                                   f"end, and side {self.other} {state}: its traceback, if any, is above")
        self.events[self.side].clear()
        self._start = time.perf_counter()

    def step_done(self, clock: StepClock) -> bool:
        """Count a step; at the end of a window record it and hand the machine over. True once all of
        this side's windows are timed (a returns after b's last window, so b's runs alone)."""
        self._count += 1
        length = self.window if self._warm else self.warmup
        if self._count < length:
            return False
        if self._warm:  # perf_counter: one clock for all processes on Linux, so windows line up
            self.windows.append({**clock.span(self._start, length, self.batch), "start": self._start,
                                 "end": clock.times[-1]})
        self._warm, self._count = True, 0
        done = len(self.windows) == self.wanted
        self.events[self.other].set()
        if not (done and self.side == "b"):
            self._wait()
        return done
