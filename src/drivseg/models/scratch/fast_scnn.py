"""Fast-SCNN written from scratch in plain PyTorch: a real-time segmentation network for CPUs.

Reference: Rudra P. K. Poudel, Stephan Liwicki, Roberto Cipolla, "Fast-SCNN: Fast Semantic
Segmentation Network", BMVC 2019, arXiv:1902.04502.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    relu: bool = True,
) -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def dsconv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """Depthwise-separable conv: 3x3 depthwise -> BN -> ReLU -> 1x1 pointwise -> BN -> ReLU."""
    return nn.Sequential(
        conv_bn_relu(in_channels, in_channels, 3, stride, groups=in_channels),
        conv_bn_relu(in_channels, out_channels, 1),
    )


class Bottleneck(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand (t=6), 3x3 depthwise, linear 1x1 project."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 6) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.block = nn.Sequential(
            conv_bn_relu(in_channels, hidden, 1),
            conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            # no ReLU after the projection: ReLU on a narrow layer destroys information
            conv_bn_relu(hidden, out_channels, 1, relu=False),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


def bottleneck_stage(in_channels: int, out_channels: int, stride: int, blocks: int = 3) -> nn.Sequential:
    """``blocks`` bottlenecks; the first one changes channels and stride."""
    layers = [Bottleneck(in_channels, out_channels, stride)]
    layers += [Bottleneck(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class PyramidPooling(nn.Module):
    """PSPNet-style pyramid pooling (bins 1, 2, 3, 6) followed by a 1x1 fusion conv."""

    def __init__(self, in_channels: int, out_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = in_channels // len(bins)
        branches = []
        for b in bins:
            if b == 1:
                # BatchNorm over a 1x1 map fails for batch size 1 in training; no BN on this branch
                reduce: nn.Module = nn.Sequential(nn.Conv2d(in_channels, reduced, 1), nn.ReLU(inplace=True))
            else:
                reduce = conv_bn_relu(in_channels, reduced, 1)
            branches.append(nn.Sequential(nn.AdaptiveAvgPool2d(b), reduce))
        self.branches = nn.ModuleList(branches)
        self.fuse = conv_bn_relu(in_channels + reduced * len(bins), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(b(x), size=size, mode="bilinear", align_corners=False) for b in self.branches]
        return self.fuse(torch.cat([x, *pooled], dim=1))


class FeatureFusion(nn.Module):
    """Add the 1/8 detail branch to the upsampled 1/32 context branch (the paper's FFM)."""

    def __init__(self, high_channels: int, low_channels: int, out_channels: int) -> None:
        super().__init__()
        self.high = conv_bn_relu(high_channels, out_channels, 1, relu=False)
        # the paper's dilated depthwise conv widens the receptive field of the upsampled context
        self.low = nn.Sequential(
            nn.Conv2d(low_channels, low_channels, 3, padding=4, dilation=4, groups=low_channels, bias=False),
            nn.BatchNorm2d(low_channels),
            nn.ReLU(inplace=True),
            conv_bn_relu(low_channels, out_channels, 1, relu=False),
        )

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.high(high) + self.low(low), inplace=True)


class FastSCNN(nn.Module):
    """Fast-SCNN: learning to downsample -> global feature extractor -> feature fusion -> classifier.

    Poudel, Liwicki, Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network", 2019,
    arXiv:1902.04502. About 1.1 M parameters (the paper: 1.11 M).

    Layout (paper, Table 1): conv 32 s2, DSConv 48 s2, DSConv 64 s2 (1/8); bottlenecks t=6:
    3x64 s2, 3x96 s2, 3x128 s1 (1/32); pyramid pooling to 128; fusion with the 1/8 branch to 128;
    two DSConv 128 and a 1x1 classifier; logits upsampled to the input size.

    Deviations from the paper: no auxiliary training heads (the paper used two, weight 0.4);
    the 1x1 pyramid pooling branch has no BatchNorm so batch size 1 trains.

    Training with batch size 1 needs H, W > 32: at 1/32 a 1x1 map leaves BatchNorm a single
    value per channel.
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.learning_to_downsample = nn.Sequential(
            conv_bn_relu(in_channels, 32, 3, stride=2),
            dsconv(32, 48, stride=2),
            dsconv(48, 64, stride=2),
        )  # 1/8
        self.global_features = nn.Sequential(
            bottleneck_stage(64, 64, stride=2),  # 1/16
            bottleneck_stage(64, 96, stride=2),  # 1/32
            bottleneck_stage(96, 128, stride=1),
            PyramidPooling(128, 128),
        )
        self.fusion = FeatureFusion(64, 128, 128)
        self.classifier = nn.Sequential(
            dsconv(128, 128),
            dsconv(128, 128),
            nn.Dropout2d(0.1),
            nn.Conv2d(128, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        high = self.learning_to_downsample(x)  # (B, 64, H/8, W/8)
        low = self.global_features(high)  # (B, 128, H/32, W/32)
        logits = self.classifier(self.fusion(high, low))  # (B, num_classes, H/8, W/8)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
