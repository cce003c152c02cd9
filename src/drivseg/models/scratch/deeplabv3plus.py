"""DeepLabV3+ written from scratch in plain PyTorch, with its own small aligned-Xception backbone.

Reference: Liang-Chieh Chen, Yukun Zhu, George Papandreou, Florian Schroff, Hartwig Adam,
"Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018,
arXiv:1802.02611.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.errors import ConfigError

# ASPP atrous rates from the paper: (6, 12, 18) at output stride 16, doubled at output stride 8
ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (atrous) conv -> BN -> ReLU -> pointwise 1x1 conv -> BN -> ReLU.

    The BN + ReLU after the depthwise conv is the paper's change to Xception (as in MobileNet).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels, in_channels, 3, stride, dilation, dilation, groups=in_channels, bias=False
            ),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class XceptionBlock(nn.Module):
    """Three separable convs (the last one strided) plus a residual 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            SeparableConv(in_channels, out_channels, dilation=dilation),
            SeparableConv(out_channels, out_channels, dilation=dilation),
            # aligned Xception replaces max pooling with a strided separable conv
            SeparableConv(out_channels, out_channels, stride=stride, dilation=dilation),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + self.shortcut(x)


class MiniXception(nn.Module):
    """Small aligned-Xception backbone with output stride 16 or 8.

    Returns the low-level features (stride 4, for the decoder) and the high-level features
    (stride ``output_stride``, for ASPP). Past the target stride, strides become dilations so the
    receptive field keeps growing without losing resolution.
    """

    def __init__(self, in_channels: int = 3, output_stride: int = 16, middle_blocks: int = 4) -> None:
        super().__init__()
        os8 = output_stride == 8
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )  # 1/2
        self.entry1 = XceptionBlock(64, 128, stride=2)  # 1/4 -> low-level features
        self.entry2 = XceptionBlock(128, 256, stride=2)  # 1/8
        self.entry3 = XceptionBlock(256, 384, stride=1 if os8 else 2)  # 1/8 or 1/16
        middle_dilation = 2 if os8 else 1
        self.middle = nn.Sequential(
            *[XceptionBlock(384, 384, dilation=middle_dilation) for _ in range(middle_blocks)]
        )
        # the exit flow's stride is always replaced by dilation (the paper's setting)
        self.exit = XceptionBlock(384, 512, dilation=2 * middle_dilation)
        self.low_channels, self.high_channels = 128, 512

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.entry1(self.stem(x))  # (B, 128, H/4, W/4)
        high = self.exit(self.middle(self.entry3(self.entry2(low))))  # (B, 512, H/os, W/os)
        return low, high


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling: 1x1 conv, three atrous separable convs, image pooling."""

    def __init__(self, in_channels: int, rates: tuple[int, int, int], out_channels: int = 256) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, bias=False),
                    nn.BatchNorm2d(out_channels),
                    nn.ReLU(inplace=True),
                ),
                *[SeparableConv(in_channels, out_channels, dilation=r) for r in rates],
            ]
        )
        # BatchNorm over a 1x1 map fails for batch size 1 in training, so no BN here
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            nn.Conv2d(5 * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.image_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+: atrous backbone + ASPP encoder and a low-level feature decoder.

    Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", 2018, arXiv:1802.02611.

    Decoder: ASPP output (1/os) is upsampled to the stride-4 low-level features, which are first
    projected to 48 channels; two 3x3 separable convs (256 channels) refine the concatenation,
    a 1x1 conv classifies, and the logits are upsampled to the input size.

    Deviations from the paper:
      - the backbone is a small aligned Xception (widths 128/256/384/512, 4 middle blocks instead
        of 16, exit flow without the final 1536/2048 separable convs) to stay CPU-friendly.
      - ASPP's image pooling branch has no BatchNorm so batch size 1 trains.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        if output_stride not in ASPP_RATES:
            raise ConfigError(
                f"DeepLabV3+ output_stride must be one of {sorted(ASPP_RATES)}, got {output_stride}"
            )
        self.backbone = MiniXception(in_channels, output_stride)
        self.aspp = ASPP(self.backbone.high_channels, ASPP_RATES[output_stride])
        self.low_project = nn.Sequential(
            nn.Conv2d(self.backbone.low_channels, 48, 1, bias=False),
            nn.BatchNorm2d(48),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(SeparableConv(256 + 48, 256), SeparableConv(256, 256))
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        low, high = self.backbone(x)
        low = self.low_project(low)  # (B, 48, H/4, W/4)
        high = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.classifier(self.decoder(torch.cat([high, low], dim=1)))  # (B, C, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
