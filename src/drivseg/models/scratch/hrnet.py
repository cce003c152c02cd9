"""HRNetV2-W18-Small-v2 written from scratch in plain PyTorch: high-resolution segmentation.

Reference: Jingdong Wang, Ke Sun, Tianheng Cheng, Borui Jiang, Chaorui Deng, Yang Zhao, Dong Liu,
Yadong Mu, Mingkui Tan, Xinggang Wang, Wenyu Liu, Bin Xiao, "Deep High-Resolution Representation
Learning for Visual Recognition", TPAMI 2020, arXiv:1908.07919. Sizes follow the official
HRNet-Semantic-Segmentation configuration ``seg_hrnet_w18_small_v2`` (3.9 M parameters there).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# W18-Small-v2: (modules, blocks per branch, branch widths) of stages 2-4; stage 1 is 2 bottlenecks
STAGE1_BLOCKS = 2
STAGES = (
    (1, 2, (18, 36)),
    (3, 2, (18, 36, 72)),
    (2, 2, (18, 36, 72, 144)),
)
STEM_WIDTH = 64
BOTTLENECK_EXPANSION = 4


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (the blocks of every parallel branch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) + projected shortcut (stage 1 at 1/4 resolution)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        out_channels = width * BOTTLENECK_EXPANSION
        self.body = nn.Sequential(
            conv_bn(in_channels, width, 1), conv_bn(width, width), conv_bn(width, out_channels, 1, relu=False)
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = conv_bn(in_channels, out_channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.shortcut(x) + self.body(x))


def fuse_path(channels: tuple[int, ...], src: int, dst: int) -> nn.Module:
    """How branch ``src`` reaches the resolution and width of branch ``dst``.

    Higher resolution -> lower: ``dst - src`` stride-2 3x3 convs (ReLU between them, not after the
    last). Lower -> higher: a 1x1 conv here; the bilinear upsampling happens in ``forward``.
    """
    if src > dst:
        return conv_bn(channels[src], channels[dst], 1, relu=False)
    steps = []
    for k in range(dst - src):
        last = k == dst - src - 1
        steps.append(conv_bn(channels[src], channels[dst] if last else channels[src], 3, 2, relu=not last))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Blocks on every branch in parallel, then multi-scale fusion: each output branch sums all
    branches brought to its resolution (the exchange unit of the paper)."""

    def __init__(self, channels: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(*[BasicBlock(c) for _ in range(blocks)]) for c in channels]
        )
        n = len(channels)
        self.fuse = nn.ModuleList(
            [
                nn.ModuleList(
                    [nn.Identity() if src == dst else fuse_path(channels, src, dst) for src in range(n)]
                )
                for dst in range(n)
            ]
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for dst, paths in enumerate(self.fuse):
            size = xs[dst].shape[-2:]
            total = xs[dst]
            for src, path in enumerate(paths):
                if src == dst:
                    continue
                y = path(xs[src])
                if src > dst:
                    # to the exact size, not a fixed factor: odd inputs give ceil-rounded branch maps
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
                total = total + y
            out.append(F.relu(total))
        return out


class Transition(nn.Module):
    """Adapt the branches to the next stage's widths and open one new branch at half resolution."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: tuple[int, ...]) -> None:
        super().__init__()
        layers = []
        for i, c in enumerate(out_channels):
            if i < len(in_channels):
                layers.append(nn.Identity() if in_channels[i] == c else conv_bn(in_channels[i], c))
            else:
                # the new, lowest-resolution branch starts from the previous lowest one
                layers.append(conv_bn(in_channels[-1], c, 3, stride=2))
        self.layers = nn.ModuleList(layers)
        self.num_inputs = len(in_channels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [layer(xs[min(i, self.num_inputs - 1)]) for i, layer in enumerate(self.layers)]


class HRNetBackbone(nn.Module):
    """Stem (two stride-2 3x3 convs, 1/4) -> 2 bottlenecks -> stages 2-4 with 2, 3, 4 parallel
    branches at 1/4, 1/8, 1/16, 1/32 and repeated multi-scale fusion. Returns the 4 branch maps."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(in_channels, STEM_WIDTH, 3, stride=2), conv_bn(STEM_WIDTH, STEM_WIDTH, 3, stride=2)
        )
        layer1 = [Bottleneck(STEM_WIDTH, STEM_WIDTH)]
        wide = STEM_WIDTH * BOTTLENECK_EXPANSION
        layer1 += [Bottleneck(wide, STEM_WIDTH) for _ in range(STAGE1_BLOCKS - 1)]
        self.layer1 = nn.Sequential(*layer1)
        transitions, stages = [], []
        previous: tuple[int, ...] = (STEM_WIDTH * BOTTLENECK_EXPANSION,)
        for modules, blocks, channels in STAGES:
            transitions.append(Transition(previous, channels))
            stages.append(nn.Sequential(*[HighResolutionModule(channels, blocks) for _ in range(modules)]))
            previous = channels
        self.transitions = nn.ModuleList(transitions)
        self.stages = nn.ModuleList(stages)
        self.out_channels = previous

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs = [self.layer1(self.stem(x))]  # (B, 256, H/4, W/4)
        for transition, stage in zip(self.transitions, self.stages):
            xs = stage(transition(xs))
        return xs  # (B, 18, H/4, W/4), (B, 36, H/8, W/8), (B, 72, H/16, W/16), (B, 144, H/32, W/32)


class HRNetV2(nn.Module):
    """HRNetV2-W18-Small-v2 for segmentation: backbone + the HRNetV2 head, 3.9 M parameters.

    Wang et al., "Deep High-Resolution Representation Learning for Visual Recognition", 2020,
    arXiv:1908.07919; official HRNet-Semantic-Segmentation ``seg_hrnet_w18_small_v2``.

    The HRNetV2 head upsamples the four branches to 1/4, concatenates them (18+36+72+144 = 270
    channels), mixes them with a 1x1 conv-BN-ReLU and classifies with a 1x1 conv; the logits are
    upsampled to the input size. Every input size works without padding: branch maps are
    ceil-rounded by the stride-2 convs and fusion upsamples to the exact target size.

    Deviation from the official code: upsampling uses ``align_corners=False`` (the project's
    convention) where the official configuration aligns corners.
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.backbone = HRNetBackbone(in_channels)
        width = sum(self.backbone.out_channels)
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        xs = self.backbone(x)
        size = xs[0].shape[-2:]
        up = [xs[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in xs[1:]]
        logits = self.head(torch.cat(up, dim=1))  # (B, num_classes, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _init_weights(module: nn.Module) -> None:
    # the official initialisation: small normal convs, unit BatchNorm
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, std=0.001)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
