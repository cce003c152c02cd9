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


# Training images/s with channels_last over contiguous, same run, bf16 autocast, 176x240 crops, batch 8,
# on the 2-core reference CPU (`benchmarks/throughput.py --channels-last-study`, medians of 3):
# convolutional networks gain 2-17% (unet 1.07-1.08, fpn 1.02-1.07, deeplabv3plus 1.02-1.04, pspnet
# 1.17, fast_scnn 1.07, bisenetv2 1.09, hrnet 1.03, scratch_unet 1.12), transformers do not (segmenter
# 0.93, scratch_segformer 1.01): on for the convolutional families, off for the transformer ones.
CHANNELS_LAST_ARCHS = frozenset({
    "unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "linknet", "manet", "pan", "upernet",
    "fast_scnn", "bisenetv2", "hrnet", "scratch_unet", "scratch_pspnet", "scratch_deeplabv3plus", "dilated_context",
})


def resolve_channels_last(setting: str, arch: str) -> bool:
    """``on`` | ``off`` | ``auto``: ``auto`` is on for the families where it measured faster.

    ``--deterministic`` runs keep it: the resume test (2 workers, augmentation, dropout) ends
    bit-identical with channels_last kernels as with the contiguous ones.
    """
    if setting in ("on", "off"):
        return setting == "on"
    return arch in CHANNELS_LAST_ARCHS
