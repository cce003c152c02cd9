"""Wall-clock durations and validation cadences given on the command line.

``--max-time 01:30:00``, ``--checkpoint-every 10m``, ``--val-every 3`` (epochs) or ``--val-every 5m``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from drivseg.errors import ConfigError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: Optional[str], flag: str) -> Optional[float]:
    """``"HH:MM:SS"``, ``"90s"``, ``"10m"``, ``"1.5h"`` -> seconds; None / none -> None."""
    if text is None or str(text).strip().lower() in ("", "none", "null"):
        return None
    text = str(text).strip()
    clock = re.fullmatch(r"(\d+):(\d{2}):(\d{2})", text)
    if clock:
        h, m, s = (int(v) for v in clock.groups())
        seconds = 3600.0 * h + 60.0 * m + s
    else:
        unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh])", text.lower())
        if not unit:
            raise ConfigError(f"{flag} {text!r}: expected HH:MM:SS or a number with a unit, e.g. 00:30:00, 90s, 10m, 1.5h")
        seconds = float(unit[1]) * _UNITS[unit[2]]
    if seconds <= 0:
        raise ConfigError(f"{flag} {text!r}: the duration must be longer than 0 seconds")
    return seconds


@dataclass(frozen=True)
class Cadence:
    """Every ``epochs`` epochs, or every ``seconds`` of wall-clock time (checked at epoch ends)."""

    epochs: Optional[int] = 1
    seconds: Optional[float] = None

    def __str__(self) -> str:
        return f"{self.seconds / 60:g}m" if self.seconds is not None else str(self.epochs)


def parse_cadence(text: object, flag: str) -> Cadence:
    """``3`` -> every 3 epochs; ``"5m"`` / ``"90s"`` / ``"00:05:00"`` -> at the first epoch end 5 min after the last."""
    value = str(text).strip()
    if re.fullmatch(r"\d+", value):
        if int(value) < 1:
            raise ConfigError(f"{flag} {value!r}: expected a number of epochs >= 1 or a duration such as 5m")
        return Cadence(epochs=int(value))
    return Cadence(epochs=None, seconds=parse_duration(value, flag))
