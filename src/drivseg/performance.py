"""Pick the fast settings for this machine: ``--precision auto`` and ``--channels-last auto``.

bf16 autocast is fast only where the hardware computes in bf16: CPUs with ``avx512_bf16`` or
``amx_bf16`` (e.g. Intel Cooper Lake / Sapphire Rapids, AMD Zen 4) and GPUs that report bf16
support. Elsewhere bf16 on a CPU is emulated and many times slower than fp32 (PyTorch issue 146508),
so ``auto`` falls back to 32-bit there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str, flags: Optional[set[str]] = None) -> tuple[str, str]:
    """(precision, why) for ``--precision``; ``auto`` -> ``bf16-mixed`` where bf16 is native, else ``32``."""
    if precision != "auto":
        return precision, "as given"
    if on_gpu(accelerator):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"GPU {torch.cuda.get_device_name(0)} supports bf16"
        return "32", "this GPU has no bf16 support"
    if accelerator not in ("auto", "cpu"):
        return "32", f"no bf16 rule for --accelerator {accelerator}"
    found = sorted((flags if flags is not None else cpu_flags()) & set(NATIVE_BF16_CPU_FLAGS))
    if found:
        return "bf16-mixed", f"the CPU has native bf16 ({', '.join(found)})"
    return "32", "the CPU has no native bf16 (no avx512_bf16 / amx_bf16), where bf16 is many times slower than fp32"


# Families measured by benchmarks/throughput.py (train images/s, channels_last vs contiguous, same
# run, bf16 autocast on this project's reference 2-core CPU); where the ratio was below 1 it stays off.
CHANNELS_LAST_ARCHS = frozenset()


def resolve_channels_last(setting: str, arch: str) -> bool:
    """``on`` | ``off`` | ``auto`` (on for the families where it measured faster)."""
    if setting in ("on", "off"):
        return setting == "on"
    return arch in CHANNELS_LAST_ARCHS
