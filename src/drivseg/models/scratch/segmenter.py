"""Segmenter (ViT-Tiny/16 + mask transformer) in plain PyTorch with timm's transformer blocks.

Reference: Robin Strudel, Ricardo Garcia, Ivan Laptev, Cordelia Schmid, "Segmenter: Transformer
for Semantic Segmentation", ICCV 2021, arXiv:2105.05633 (official code: rstrudel/segmenter).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block

# ViT-Tiny/16, the layout of timm's vit_tiny_patch16_224 (so its weights load into the encoder)
PATCH_SIZE = 16
EMBED_DIM = 192
DEPTH = 12
NUM_HEADS = 3
MLP_RATIO = 4.0
PRETRAIN_GRID = (14, 14)  # 224 / 16: the grid the position embeddings are stored for
# mask transformer: 2 layers of the encoder width, 64-dim heads (official create_decoder)
DECODER_LAYERS = 2
DECODER_DROPOUT = 0.1


class PatchEmbed(nn.Module):
    """Non-overlapping 16x16 patches -> EMBED_DIM channels (a strided conv is the linear projection)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, EMBED_DIM, PATCH_SIZE, PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, EMBED_DIM, H/16, W/16)


class ViTTinyEncoder(nn.Module):
    """ViT-Tiny/16: patch embedding + class token + learned position embeddings, 12 pre-norm blocks.

    Parameter names equal timm's ``vit_tiny_patch16_224`` (without its classifier ``head``).
    Position embeddings are stored for the 14x14 grid of 224x224 inputs and bilinearly resized to
    the grid of the actual input, as the official code does.
    """

    def __init__(self, in_channels: int = 3, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + PRETRAIN_GRID[0] * PRETRAIN_GRID[1], EMBED_DIM))
        rates = [drop_path_rate * i / max(DEPTH - 1, 1) for i in range(DEPTH)]
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(
            *[
                Block(EMBED_DIM, NUM_HEADS, MLP_RATIO, qkv_bias=True, drop_path=r, norm_layer=norm)
                for r in rates
            ]
        )
        self.norm = norm(EMBED_DIM)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """(1, 1 + grid_h * grid_w, EMBED_DIM): the class token's entry + the resized grid."""
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, *PRETRAIN_GRID, EMBED_DIM).permute(0, 3, 1, 2)
        # always resized, even to 14x14 (an exact identity then): no size-dependent branch for
        # tracing to freeze, so ONNX exports keep any input size
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
        return torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Images padded to multiples of 16 -> (patch tokens (B, N, EMBED_DIM), grid_h, grid_w)."""
        x = self.patch_embed(x)
        grid_h, grid_w = x.shape[-2:]
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens + self.position_embedding(grid_h, grid_w)))
        return tokens[:, 1:], grid_h, grid_w  # the class token is dropped for decoding


class MaskTransformer(nn.Module):
    """Learned class embeddings go through 2 transformer layers jointly with the patch tokens;
    masks are scalar products of the L2-normalised patch and class embeddings."""

    def __init__(self, num_classes: int, dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.proj_dec = nn.Linear(dim, dim)
        self.cls_emb = nn.Parameter(torch.zeros(1, num_classes, dim))
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim, dim // 64, MLP_RATIO, qkv_bias=True,
                    proj_drop=DECODER_DROPOUT, attn_drop=DECODER_DROPOUT,
                )
                for _ in range(DECODER_LAYERS)
            ]
        )
        self.decoder_norm = nn.LayerNorm(dim)
        self.proj_patch = nn.Parameter(dim**-0.5 * torch.randn(dim, dim))
        self.proj_classes = nn.Parameter(dim**-0.5 * torch.randn(dim, dim))
        # normalises each patch's class scores; the cosine similarities alone are stuck in [-1, 1]
        self.mask_norm = nn.LayerNorm(num_classes)

    def forward(self, patches: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        """(B, N, D) patch tokens -> (B, num_classes, grid_h, grid_w) patch-level masks."""
        x = self.proj_dec(patches)
        x = torch.cat([x, self.cls_emb.expand(x.shape[0], -1, -1)], dim=1)  # (B, N + C, D)
        x = self.decoder_norm(self.blocks(x))
        patch_emb = F.normalize(x[:, : -self.num_classes] @ self.proj_patch, dim=-1)  # (B, N, D)
        class_emb = F.normalize(x[:, -self.num_classes :] @ self.proj_classes, dim=-1)  # (B, C, D)
        masks = self.mask_norm(patch_emb @ class_emb.transpose(1, 2))  # (B, N, C)
        return masks.transpose(1, 2).reshape(x.shape[0], self.num_classes, grid_h, grid_w)


class Segmenter(nn.Module):
    """Segmenter Seg-T-Mask/16: ViT-Tiny/16 encoder + mask-transformer decoder, about 6.5 M parameters.

    Strudel, Garcia, Laptev, Schmid, "Segmenter: Transformer for Semantic Segmentation", 2021,
    arXiv:2105.05633. The official Seg-T-Mask/16 (ADE20K, 150 classes) lists 7 M parameters: it
    also counts the unused 1000-class ImageNet head and a 32x32 position-embedding grid.

    Any input size: the image is zero-padded to a multiple of 16 (bottom/right), the patch-level
    masks are bilinearly upsampled to the padded size and cropped back.

    Deviations from the official code: random initialisation (no ImageNet-21k weights), stochastic
    depth 0.1 in the encoder; masks are normalised with ``F.normalize`` (an epsilon against zero
    vectors).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.encoder = ViTTinyEncoder(in_channels)
        self.decoder = MaskTransformer(num_classes)
        self.apply(_init_weights)
        for p in (self.encoder.pos_embed, self.encoder.cls_token, self.decoder.cls_emb):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        h, w = x.shape[-2], x.shape[-1]
        # plain arithmetic on the shape, no ``if``: traced exports keep the padding dynamic
        pad_h = (PATCH_SIZE - h % PATCH_SIZE) % PATCH_SIZE
        pad_w = (PATCH_SIZE - w % PATCH_SIZE) % PATCH_SIZE
        x = F.pad(x, (0, pad_w, 0, pad_h))
        patches, grid_h, grid_w = self.encoder(x)
        masks = self.decoder(patches, grid_h, grid_w)  # (B, num_classes, H/16, W/16)
        masks = F.interpolate(masks, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return masks[..., :h, :w]


def _init_weights(module: nn.Module) -> None:
    # the official initialisation: small normal linears, unit LayerNorm
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
