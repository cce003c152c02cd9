"""BiSeNetV2 written from scratch in plain PyTorch: a two-branch real-time segmentation network.

Reference: Changqian Yu, Changxin Gao, Jingbo Wang, Gang Yu, Chunhua Shen, Nong Sang, "BiSeNet V2:
Bilateral Network with Guided Aggregation for Real-time Semantic Segmentation", IJCV 2021,
arXiv:2004.02147.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.models.scratch.fast_scnn import conv_bn_relu as conv_bn  # the same Conv-BN-ReLU unit

EXPANSION = 6  # gather-and-expansion ratio (paper, Sec. 4.2)
HEAD_CHANNELS = 1024  # segment head width at inference
BOOSTER_CHANNELS = 128  # booster (auxiliary) head width


def detail_branch(in_channels: int) -> nn.Sequential:
    """Wide and shallow: 3 stages of 3x3 convs (64, 64, 128 channels), each starting with stride 2."""
    return nn.Sequential(
        conv_bn(in_channels, 64, stride=2), conv_bn(64, 64),  # 1/2
        conv_bn(64, 64, stride=2), conv_bn(64, 64), conv_bn(64, 64),  # 1/4
        conv_bn(64, 128, stride=2), conv_bn(128, 128), conv_bn(128, 128),  # 1/8
    )  # fmt: skip


class StemBlock(nn.Module):
    """Fast downsampling to 1/4: a strided conv and a max pool in parallel, concatenated, fused."""

    def __init__(self, in_channels: int, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = conv_bn(in_channels, out_channels, stride=2)
        self.left = nn.Sequential(
            conv_bn(out_channels, out_channels // 2, 1), conv_bn(out_channels // 2, out_channels, stride=2)
        )
        self.right = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse = conv_bn(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class GatherExpansion(nn.Module):
    """Gather-and-expansion layer: 3x3 conv gathers, depthwise 3x3 expands 6x, 1x1 projects.

    With stride 2 a second depthwise conv follows the strided one, and the shortcut becomes a
    depthwise-separable strided conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        mid = in_channels * EXPANSION
        layers = [
            conv_bn(in_channels, in_channels),
            conv_bn(in_channels, mid, stride=stride, groups=in_channels, relu=stride == 1),
        ]
        if stride == 2:
            layers.append(conv_bn(mid, mid, groups=mid))
        layers.append(conv_bn(mid, out_channels, 1, relu=False))
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                conv_bn(in_channels, in_channels, stride=stride, groups=in_channels, relu=False),
                conv_bn(in_channels, out_channels, 1, relu=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """Global average pooling -> 1x1 conv, broadcast-added to the map, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # the paper normalises the pooled vector with BatchNorm; BatchNorm over a 1x1 map fails for
        # batch size 1 in training, so the pooled branch is a biased conv without normalisation
        self.pooled = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True))
        self.out = conv_bn(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.pooled(x.mean(dim=(2, 3), keepdim=True)))


class SemanticBranch(nn.Module):
    """Narrow and deep: stem (1/4), GE layers to 1/8, 1/16, 1/32 (32, 64, 128 channels), context
    embedding. Returns every stage output, for the booster heads."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.stem = StemBlock(in_channels)  # 16 ch, 1/4
        self.stage3 = nn.Sequential(GatherExpansion(16, 32, stride=2), GatherExpansion(32, 32))  # 1/8
        self.stage4 = nn.Sequential(GatherExpansion(32, 64, stride=2), GatherExpansion(64, 64))  # 1/16
        self.stage5 = nn.Sequential(
            GatherExpansion(64, 128, stride=2), *[GatherExpansion(128, 128) for _ in range(3)]
        )  # 1/32
        self.context = ContextEmbedding(128)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s2 = self.stem(x)
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        s5 = self.stage5(s4)
        return [s2, s3, s4, s5, self.context(s5)]


def depthwise_separable(channels: int) -> nn.Sequential:
    """3x3 depthwise conv -> BatchNorm -> 1x1 conv (no normalisation: a sigmoid gate or product follows)."""
    return nn.Sequential(
        conv_bn(channels, channels, groups=channels, relu=False), nn.Conv2d(channels, channels, 1, bias=False)
    )


class BilateralGuidedAggregation(nn.Module):
    """Each branch gates the other: detail (1/8) x sigmoid(upsampled semantic) and
    downsampled detail (1/32) x sigmoid(semantic), upsampled and summed, then a 3x3 conv."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.detail_keep = depthwise_separable(channels)
        self.detail_down = nn.Sequential(
            conv_bn(channels, channels, stride=2, relu=False), nn.AvgPool2d(3, stride=2, padding=1)
        )
        self.semantic_up = conv_bn(channels, channels, relu=False)
        self.semantic_keep = depthwise_separable(channels)
        self.out = conv_bn(channels, channels)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        size = detail.shape[-2:]
        # to the exact detail size: odd inputs make 4 x (1/32 map) differ from the 1/8 map
        gate_up = F.interpolate(self.semantic_up(semantic), size=size, mode="bilinear", align_corners=False)
        high = self.detail_keep(detail) * torch.sigmoid(gate_up)
        low = self.detail_down(detail) * torch.sigmoid(self.semantic_keep(semantic))
        low = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        return self.out(high + low)


def segment_head(in_channels: int, mid_channels: int, num_classes: int) -> nn.Sequential:
    """3x3 conv-BN-ReLU -> dropout -> 1x1 classifier (the paper's Seg Head)."""
    return nn.Sequential(
        conv_bn(in_channels, mid_channels), nn.Dropout(0.1), nn.Conv2d(mid_channels, num_classes, 1)
    )


class BiSeNetV2(nn.Module):
    """BiSeNetV2: detail branch (1/8) + semantic branch (1/32) + guided aggregation + segment head.

    Yu, Gao, Wang, Yu, Shen, Sang, "BiSeNet V2: Bilateral Network with Guided Aggregation for
    Real-time Semantic Segmentation", IJCV 2021, arXiv:2004.02147. For 19 classes: 3.36 M parameters
    at inference (3.65 M with the booster heads), 24.6 GMACs at 512x1024 (the paper: 21.15 GFLOPs;
    it gives no parameter count and leaves the segment-head width open).

    In training mode returns ``{"out": logits, "aux": [four booster logits]}``: the booster heads
    read the semantic branch at 1/4, 1/8, 1/16 and 1/32 (stem, stages 3, 4 and 5 before the
    context embedding) and their logits stay at that resolution. In eval mode returns the logits
    only, so the boosters cost nothing at inference.

    Deviations from the paper: the pooled context vector has no BatchNorm (batch size 1 trains);
    upsampling is bilinear to the exact target size, so any input size works; the segment head is
    1024 wide and the booster heads 128, and the depthwise convs of the GE layers are followed by
    ReLU, as in the common reimplementations (CoinCheung/BiSeNet, mmsegmentation).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.detail = detail_branch(in_channels)
        self.semantic = SemanticBranch(in_channels)
        self.aggregation = BilateralGuidedAggregation(128)
        self.head = segment_head(128, HEAD_CHANNELS, num_classes)
        self.boosters = nn.ModuleList(
            [segment_head(c, BOOSTER_CHANNELS, num_classes) for c in (16, 32, 64, 128)]
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in [self.head, *self.boosters]:
            # He init suits convs followed by ReLU; on the classifiers it starts with logits in the
            # tens (initial loss ~20): PyTorch's default init keeps them small
            head[-1].reset_parameters()

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, dict[str, object]]:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits (+ boosters in training)."""
        stages = self.semantic(x)
        fused = self.aggregation(self.detail(x), stages[-1])  # (B, 128, H/8, W/8)
        logits = F.interpolate(self.head(fused), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.training:
            return {"out": logits, "aux": [head(s) for head, s in zip(self.boosters, stages[:4])]}
        return logits
