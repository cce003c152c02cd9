"""UNet written from scratch in plain PyTorch.

Reference: Olaf Ronneberger, Philipp Fischer, Thomas Brox, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI 2015, arXiv:1505.04597.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.errors import ConfigError

UP_MODES = ("transpose", "bilinear")


class DoubleConv(nn.Sequential):
    """Two (3x3 conv -> BatchNorm -> ReLU) layers: the building block of every UNet level."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            # bias is redundant in front of BatchNorm, which has its own shift
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """Contracting step: 2x2 max pool (halves H, W) then a double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """Expanding step: upsample x2 while halving channels, concatenate the skip, double conv."""

    def __init__(self, in_channels: int, out_channels: int, up_mode: str) -> None:
        super().__init__()
        if up_mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        else:
            # the paper's "up-convolution" is upsampling followed by a channel-halving conv
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, 1),
            )
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # max pooling floors odd sizes, so the upsampled map can be one pixel short of the skip
        dh = skip.shape[-2] - x.shape[-2]
        dw = skip.shape[-1] - x.shape[-1]
        if dh or dw:
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """UNet: 4 contracting and 4 expanding levels joined by skip connections.

    Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    2015, arXiv:1505.04597.

    Deviations from the paper:
      - 3x3 convs use padding=1 (the paper used unpadded convs and cropped the skips), so the
        output has the input's size; odd sizes are handled by padding the upsampled map.
      - BatchNorm after every conv (the paper predates BatchNorm's wide use).
      - ``base_width`` defaults to 32 to stay CPU-friendly; the paper used 64 (about 31 M
        parameters; width 32 has about a quarter of that).
      - ``up_mode="bilinear"`` replaces the learned 2x2 up-convolution with bilinear upsampling
        followed by a 1x1 conv that halves the channels.

    Inputs need H, W >= 16 (four 2x poolings).
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, base_width: int = 32, up_mode: str = "transpose"
    ) -> None:
        super().__init__()
        if up_mode not in UP_MODES:
            raise ConfigError(f"UNet up_mode {up_mode!r} is not supported; use one of {UP_MODES}")
        w = [base_width * 2**i for i in range(5)]  # 32, 64, 128, 256, 512 by default
        self.inc = DoubleConv(in_channels, w[0])
        self.downs = nn.ModuleList([Down(w[i], w[i + 1]) for i in range(4)])
        self.ups = nn.ModuleList([Up(w[i + 1], w[i], up_mode) for i in reversed(range(4))])
        self.classifier = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        x = self.inc(x)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is not a skip
        for up in self.ups:
            x = up(x, skips.pop())
        return self.classifier(x)
