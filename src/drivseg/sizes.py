"""Image sizes given on the command line (``--crop-size``, ``--slide``, ``--stride``)."""

from __future__ import annotations

import re
from typing import Optional

from drivseg.errors import ConfigError


def parse_size(text: Optional[str], flag: str) -> Optional[tuple[int, int]]:
    """``"512x1024"``, ``"512,1024"`` or ``"512 1024"`` -> (512, 1024); None -> None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX,\s]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ConfigError(f"{flag} {text!r}: expected HxW in pixels, e.g. 512x512")
    return int(match[1]), int(match[2])
