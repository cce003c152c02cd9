"""PSPNet written from scratch in plain PyTorch, with its own small dilated ResNet backbone.

Reference: Hengshuang Zhao, Jianping Shi, Xiaojuan Qi, Xiaogang Wang, Jiaya Jia, "Pyramid Scene
Parsing Network", CVPR 2017, arXiv:1612.01105.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (same padding) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs + identity), with optional dilation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


def make_stage(
    in_channels: int, out_channels: int, stride: int, dilation: int, blocks: int = 2
) -> nn.Sequential:
    """A ResNet stage: the first block changes channels/stride, the rest keep them."""
    layers = [BasicBlock(in_channels, out_channels, stride, dilation)]
    layers += [BasicBlock(out_channels, out_channels, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class DilatedResNet(nn.Module):
    """ResNet-18-like backbone at output stride 8: stages 3 and 4 trade stride for dilation 2 and 4.

    Uses the deep stem (three 3x3 convs) of the ResNets in the PSPNet paper. Returns the stage 3
    features (for the auxiliary head) and the stage 4 features, both at 1/8 of the input.
    """

    def __init__(self, in_channels: int = 3, base_width: int = 32) -> None:
        super().__init__()
        w = [base_width * 2**i for i in range(4)]  # 32, 64, 128, 256 by default
        self.stem = nn.Sequential(
            conv_bn_relu(in_channels, w[0] // 2, stride=2),
            conv_bn_relu(w[0] // 2, w[0] // 2),
            conv_bn_relu(w[0] // 2, w[0]),
            nn.MaxPool2d(3, stride=2, padding=1),
        )  # 1/4
        self.stage1 = make_stage(w[0], w[0], stride=1, dilation=1)  # 1/4
        self.stage2 = make_stage(w[0], w[1], stride=2, dilation=1)  # 1/8
        # dilation instead of stride keeps 1/8 resolution with the receptive field of 1/16, 1/32
        self.stage3 = make_stage(w[1], w[2], stride=1, dilation=2)  # 1/8
        self.stage4 = make_stage(w[2], w[3], stride=1, dilation=4)  # 1/8
        self.out_channels = (w[2], w[3])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stage2(self.stage1(self.stem(x)))
        c3 = self.stage3(x)  # (B, 4*base, H/8, W/8)
        c4 = self.stage4(c3)  # (B, 8*base, H/8, W/8)
        return c3, c4


class PyramidPoolingModule(nn.Module):
    """Pool the feature map into 1x1, 2x2, 3x3, 6x6 bins, reduce, upsample and concatenate.

    Output channels: ``in_channels + len(bins) * in_channels // len(bins)`` (2x the input).
    """

    def __init__(self, in_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = in_channels // len(bins)
        branches = []
        for b in bins:
            if b == 1:
                # BatchNorm over a 1x1 map fails for batch size 1 in training (one value per
                # channel), so the global branch uses a biased conv without normalisation
                layers: list[nn.Module] = [nn.Conv2d(in_channels, reduced, 1), nn.ReLU(inplace=True)]
            else:
                layers = [
                    nn.Conv2d(in_channels, reduced, 1, bias=False),
                    nn.BatchNorm2d(reduced),
                    nn.ReLU(inplace=True),
                ]
            branches.append(nn.Sequential(nn.AdaptiveAvgPool2d(b), *layers))
        self.branches = nn.ModuleList(branches)
        self.out_channels = in_channels + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False)
            for branch in self.branches
        ]
        return torch.cat([x, *pooled], dim=1)


def seg_head(in_channels: int, mid_channels: int, num_classes: int) -> nn.Sequential:
    """3x3 conv -> BN -> ReLU -> dropout 0.1 -> 1x1 classifier, as in the paper's heads."""
    return nn.Sequential(
        conv_bn_relu(in_channels, mid_channels),
        nn.Dropout2d(0.1),
        nn.Conv2d(mid_channels, num_classes, 1),
    )


class PSPNet(nn.Module):
    """PSPNet: dilated ResNet (output stride 8) + pyramid pooling module + auxiliary head.

    Zhao, Shi, Qi, Wang, Jia, "Pyramid Scene Parsing Network", 2017, arXiv:1612.01105.

    In training mode returns ``{"out": logits, "aux": aux_logits}``; the auxiliary head reads
    stage 3 (deep supervision, the paper weights its loss by 0.4) and its logits stay at 1/8 of
    the input. In eval mode returns the logits only.

    Deviations from the paper:
      - backbone is a small ResNet-18-like net (basic blocks, 2 per stage) with widths
        ``base_width * (1, 2, 4, 8)``; ``base_width`` defaults to 32 (ResNet-18 uses 64, the paper
        used ResNet-50/101/152 with bottleneck blocks), to stay CPU-friendly.
      - head widths are scaled with the backbone (final 3x3 conv has ``4 * base_width`` channels,
        the paper used 512).
      - the 1x1 (global) pooling branch has no BatchNorm so batch size 1 trains.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, base_width: int = 32) -> None:
        super().__init__()
        self.backbone = DilatedResNet(in_channels, base_width)
        c3_channels, c4_channels = self.backbone.out_channels
        self.ppm = PyramidPoolingModule(c4_channels)
        self.head = seg_head(self.ppm.out_channels, c4_channels // 2, num_classes)
        self.aux_head = seg_head(c3_channels, c3_channels // 2, num_classes)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits (+ aux in training)."""
        c3, c4 = self.backbone(x)
        logits = self.head(self.ppm(c4))  # (B, num_classes, H/8, W/8)
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.training:
            return {"out": logits, "aux": self.aux_head(c3)}
        return logits
