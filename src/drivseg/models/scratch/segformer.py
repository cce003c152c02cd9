"""SegFormer-B0 written from scratch in plain PyTorch: Mix Transformer (MiT-B0) + all-MLP decoder.

Reference: Enze Xie, Wenhai Wang, Zhiding Yu, Anima Anandkumar, Jose M. Alvarez, Ping Luo,
"SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers",
NeurIPS 2021, arXiv:2105.15203.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# MiT-B0 hyper-parameters (paper, appendix table of MiT variants)
EMBED_DIMS = (32, 64, 160, 256)
DEPTHS = (2, 2, 2, 2)
NUM_HEADS = (1, 2, 5, 8)
SR_RATIOS = (8, 4, 2, 1)
MLP_RATIO = 4
DECODER_DIM = 256


class OverlapPatchEmbed(nn.Module):
    """Strided conv whose kernel is larger than its stride, so neighbouring patches overlap."""

    def __init__(self, in_channels: int, dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size, stride, kernel_size // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)  # (B, dim, h, w)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w  # (B, h*w, dim)


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a map shrunk ``sr_ratio`` times per side.

    Shrinking K, V cuts the attention cost from O(N^2) to O(N^2 / sr_ratio^2).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.sr_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, heads, N, d)
        if self.sr_ratio > 1:
            # a map smaller than sr_ratio would vanish under the strided conv; keep at least one token
            grid = x.transpose(1, 2).reshape(b, c, h, w)
            pad_h, pad_w = max(0, self.sr_ratio - h), max(0, self.sr_ratio - w)
            if pad_h or pad_w:
                grid = F.pad(grid, [0, pad_w, 0, pad_h])
            x = self.sr_norm(self.sr(grid).flatten(2).transpose(1, 2))  # (B, N / sr^2, C)
        kv = self.kv(x).reshape(b, -1, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    """MLP with a 3x3 depthwise conv between the two linears: it leaks position information,
    which is why MiT needs no positional encoding and works at any input size."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a residual branch for whole samples with probability p."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + MixFFN(LN(x))."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim, dim * MLP_RATIO)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.ffn(self.norm2(x), h, w))


class MixTransformerStage(nn.Module):
    """Overlapping patch embedding, transformer blocks, LayerNorm; returns a (B, C, h, w) map."""

    def __init__(
        self, in_channels: int, dim: int, kernel_size: int, stride: int,
        num_heads: int, sr_ratio: int, drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, kernel_size, stride)
        # one block per drop-path rate
        self.blocks = nn.ModuleList([TransformerBlock(dim, num_heads, sr_ratio, p) for p in drop_paths])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.patch_embed(x)
        for block in self.blocks:
            x = block(x, h, w)
        return self.norm(x).transpose(1, 2).reshape(x.shape[0], -1, h, w)


class MixTransformerB0(nn.Module):
    """MiT-B0 encoder: four stages at strides 4, 8, 16, 32 with embed dims 32, 64, 160, 256."""

    def __init__(self, in_channels: int = 3, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        # stochastic depth grows linearly with block index over the whole encoder
        total = sum(DEPTHS)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, start, prev = [], 0, in_channels
        for i, (dim, depth) in enumerate(zip(EMBED_DIMS, DEPTHS)):
            kernel_size, stride = (7, 4) if i == 0 else (3, 2)
            stages.append(
                MixTransformerStage(
                    prev, dim, kernel_size, stride, NUM_HEADS[i], SR_RATIOS[i], rates[start : start + depth]
                )
            )
            start, prev = start + depth, dim
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)  # (B, EMBED_DIMS[i], H / 4*2^i, W / 4*2^i)
        return features


class AllMLPDecoder(nn.Module):
    """Project every stage to 256 channels (per-pixel linear), upsample to 1/4, fuse, classify."""

    def __init__(
        self, num_classes: int, in_dims: tuple[int, ...] = EMBED_DIMS, dim: int = DECODER_DIM
    ) -> None:
        super().__init__()
        # a 1x1 conv is the per-pixel linear layer of the paper, without reshaping to tokens
        self.linears = nn.ModuleList([nn.Conv2d(c, dim, 1) for c in in_dims])
        self.fuse = nn.Sequential(
            nn.Conv2d(len(in_dims) * dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True)
        )
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(dim, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        projected = [
            F.interpolate(linear(f), size=size, mode="bilinear", align_corners=False)
            for linear, f in zip(self.linears, features)
        ]
        # the paper concatenates deepest-first; the order only permutes the fuse weights
        fused = self.fuse(torch.cat(projected[::-1], dim=1))  # (B, 256, H/4, W/4)
        return self.classifier(self.dropout(fused))


class SegFormerB0(nn.Module):
    """SegFormer-B0: MiT-B0 encoder + all-MLP decoder (256 channels), about 3.7 M parameters.

    Xie, Wang, Yu, Anandkumar, Alvarez, Luo, "SegFormer: Simple and Efficient Design for Semantic
    Segmentation with Transformers", 2021, arXiv:2105.15203.

    Works at any input size (no positional encoding; the Mix-FFN depthwise conv supplies
    position). Deviations from the paper: attention uses PyTorch's fused
    ``scaled_dot_product_attention`` (same maths); stage maps smaller than the spatial-reduction
    ratio are zero-padded before reduction so tiny inputs still work.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.encoder = MixTransformerB0(in_channels, drop_path_rate)
        self.decoder = AllMLPDecoder(num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        logits = self.decoder(self.encoder(x))  # (B, num_classes, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _init_weights(module: nn.Module) -> None:
    # the reference implementation's initialisation: small normal linears, unit LayerNorm
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
