"""Entry-point wrapper: user errors become one line on stderr and exit code 2, no traceback."""

from __future__ import annotations

import sys
from typing import Callable

from drivseg.errors import DrivsegError


def one_line(err: BaseException) -> str:
    """The user-facing message. Errors re-raised from a DataLoader worker carry the worker's
    traceback in their text; the message we wrote is its last line."""
    text = str(err).strip()
    last = text.splitlines()[-1] if text else type(err).__name__
    for prefix in ("drivseg.errors.DataError: ", "drivseg.errors.ConfigError: ", "DataError: ", "ConfigError: "):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last


def run_entry_point(main: Callable[[], int]) -> int:
    """Run ``main``; print ``error: ...`` for bad input a user can fix."""
    try:
        return main()
    except DrivsegError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
