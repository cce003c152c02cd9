"""Adding your own architecture: one file, one registry line, and it trains through train.py."""

from __future__ import annotations

import json

import torch
import torch.nn as nn

import train
from drivseg.models import ARCHS, build_model
from drivseg.models.tiny_fcn import build_tiny_fcn


class Toy(nn.Module):
    """A user's model: one conv, logits at the input size."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def build_toy(num_classes: int, encoder=None, encoder_weights=None, in_channels: int = 3) -> nn.Module:
    return Toy(num_classes)


def test_registered_user_model_trains_and_beats_chance(monkeypatch, tiny_camvid, tmp_path) -> None:
    monkeypatch.setitem(ARCHS, "toy", build_toy)  # the one registry line a user adds
    run_dir = tmp_path / "run"
    argv = [
        "--arch", "toy", "--data", "camvid", "--data-root", str(tiny_camvid), "--crop-size", "48x64",
        "--scale-range", "1", "1", "--batch-size", "4", "--num-workers", "0", "--epochs", "15", "--lr", "0.05",
        "--logger", "csv", "--output-dir", str(run_dir),
    ]  # fmt: skip
    assert train.main(argv) == 0
    results = json.loads((run_dir / "results.json").read_text())
    # the tiny dataset's colour encodes its class, so a 3x3 conv can learn it; chance is ~1/11
    assert results["val/pixel_acc"] > 0.5
    metrics = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    col = header.index("train/loss_epoch")
    epoch_losses = [float(r.split(",")[col]) for r in metrics[1:] if r.split(",")[col]]
    assert epoch_losses[-1] < 0.7 * epoch_losses[0]


def test_tiny_fcn_template_shapes_and_gradients() -> None:
    net = build_model("tiny_fcn", num_classes=5)
    x = torch.randn(2, 3, 37, 53)
    out = net(x)
    assert out.shape == (2, 5, 37, 53)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert ARCHS["tiny_fcn"] is build_tiny_fcn
