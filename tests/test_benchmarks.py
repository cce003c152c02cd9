"""The architecture benchmark counts parameters and MACs correctly (checked on a one-conv net)."""

from __future__ import annotations

import torch.nn as nn

from benchmarks.arch_table import measure
from drivseg.models import ARCHS


def test_measure_counts_params_and_macs_by_hand(monkeypatch) -> None:
    monkeypatch.setitem(ARCHS, "one_conv", lambda num_classes, **_: nn.Conv2d(3, num_classes, 3, padding=1))
    row = measure("one_conv", (16, 24), batch=1, repeats=1)
    assert row["params_m"] * 1e6 == 11 * 3 * 3 * 3 + 11
    assert row["gmacs"] * 1e9 == 16 * 24 * 11 * 3 * 3 * 3  # one MAC per output pixel, channel and tap
    assert row["latency_ms"] > 0 and row["train_img_s"] > 0
