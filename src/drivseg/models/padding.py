"""Run a network on inputs of any size: pad to its stride, crop the logits back."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PadToMultiple(nn.Module):
    """Wrap ``net`` so inputs whose H or W is not a multiple of ``multiple`` (or is below
    ``min_size``) still work.

    CamVid frames are 360x480 and 360 is not a multiple of 32: rather than resize (which would move
    label boundaries) we pad bottom/right with zeros (the mean after normalisation) and crop the
    logits back, so evaluation happens at the original resolution.
    """

    def __init__(self, net: nn.Module, multiple: int, min_size: int = 1) -> None:
        super().__init__()
        self.net = net
        self.multiple = int(multiple)
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        pad_h = max(self.min_size - h, (-h) % self.multiple)
        pad_w = max(self.min_size - w, (-w) % self.multiple)
        pad_h += (-(h + pad_h)) % self.multiple
        pad_w += (-(w + pad_w)) % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        out = self.net(x)
        if not (pad_h or pad_w):
            return out
        if isinstance(out, dict):
            # aux heads run at lower resolution: crop them by the same fraction
            return {k: _crop_fraction(v, h, w, h + pad_h, w + pad_w) for k, v in out.items()}
        return out[..., :h, :w]


def _crop_fraction(t, h: int, w: int, padded_h: int, padded_w: int):
    if isinstance(t, (list, tuple)):
        return type(t)(_crop_fraction(x, h, w, padded_h, padded_w) for x in t)
    th, tw = t.shape[-2:]
    return t[..., : max(1, round(th * h / padded_h)), : max(1, round(tw * w / padded_w))]
