"""What the architecture tests share: a deep-supervision-aware loss and a fixed-batch fitting check."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.data.label_spec import IGNORE_INDEX


def aux_aware_loss(out, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the logits plus 0.4 x every auxiliary loss (aux logits upsampled)."""
    logits, aux = (out["out"], out["aux"]) if isinstance(out, dict) else (out, [])
    aux = [aux] if isinstance(aux, torch.Tensor) else aux
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    for a in aux:
        a = F.interpolate(a, size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + 0.4 * F.cross_entropy(a, target, ignore_index=IGNORE_INDEX)
    return loss


def fixed_batch_losses(model: nn.Module, steps: int = 8) -> list[float]:
    """Losses of ``steps`` Adam steps on one 2x3x64x64 batch with 3 classes learnable from position
    and colour (left half class 1, right half class 2, the top rows void)."""
    x = torch.randn(2, 3, 64, 64)
    x[:, 0, :, 32:] += 2.0
    target = torch.ones(2, 64, 64, dtype=torch.long)
    target[:, :, 32:] = 2
    target[:, :4] = IGNORE_INDEX
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = aux_aware_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_backward_reaches_every_parameter(model: nn.Module, out, target: torch.Tensor) -> None:
    """The loss of ``out`` is finite and gives every parameter a finite gradient, not all zero."""
    loss = aux_aware_loss(out, target)
    loss.backward()
    assert torch.isfinite(loss)
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    bad_grad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad_grad, f"non-finite gradients: {bad_grad[:5]}"
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0
