"""Dilated-convolution front end + basic context module (Yu & Koltun), from scratch in plain PyTorch.

Reference: Fisher Yu, Vladlen Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions",
ICLR 2016, arXiv:1511.07122 (official code: fyu/dilation, ``dilation8`` models).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# VGG-16 convolution stages: (convs, width, dilation); pooling follows stages 1-3 only
VGG_STAGES = ((2, 64, 1), (2, 128, 1), (3, 256, 1), (3, 512, 1), (3, 512, 2))
FC_WIDTH = 4096
FC6_KERNEL, FC6_DILATION = 7, 4
# basic context module: 3x3 layers with these dilations, then a 1x1 layer
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)


class _OneDNNFreeBackward(torch.autograd.Function):
    """conv2d whose backward runs without oneDNN (see ``LargeDilatedConv2d``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int, dilation: int):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, bias, padding=padding, dilation=dilation)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        # set directly: torch.backends.mkldnn.flags() also resets TF32 settings, which warns
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            gx, gw, gb = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]], [1, 1], [ctx.padding] * 2, [ctx.dilation] * 2,
                False, [0, 0], 1, list(ctx.needs_input_grad[:3]),
            )  # fmt: skip
        finally:
            torch.backends.mkldnn.enabled = enabled
        return gx, gw, gb, None, None


class LargeDilatedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters) for fc6, the 7x7 conv dilated by 4.

    PyTorch's oneDNN backward of this layer on CPU takes ~100 s for a 67x93 batch of 2 (the forward
    0.7 s); PyTorch's own kernels do it in ~4 s. CPU training therefore computes the backward
    without oneDNN; inference, GPUs and exports use the plain convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.device.type == "cpu" and torch.is_grad_enabled():
            return _OneDNNFreeBackward.apply(x, self.weight, self.bias, self.padding[0], self.dilation[0])
        return super().forward(x)


class FrontEnd(nn.Module):
    """VGG-16 adapted for dense prediction: pool4 and pool5 removed, conv5 dilated by 2, fc6 a 7x7
    conv dilated by 4, fc7 a 1x1 conv, then a 1x1 conv to class scores. Output stride 8."""

    def __init__(self, num_classes: int, in_channels: int = 3, fc_width: int = FC_WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, (convs, width, dilation) in enumerate(VGG_STAGES):
            for _ in range(convs):
                conv = nn.Conv2d(prev, width, 3, padding=dilation, dilation=dilation)
                layers += [conv, nn.ReLU(inplace=True)]
                prev = width
            if i < 3:
                # ceil_mode: odd sizes keep their last row/column instead of dropping it
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        pad6 = FC6_DILATION * (FC6_KERNEL - 1) // 2
        self.classifier = nn.Sequential(
            LargeDilatedConv2d(prev, fc_width, FC6_KERNEL, padding=pad6, dilation=FC6_DILATION),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(fc_width, fc_width, 1),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(fc_width, num_classes, 1),  # class scores
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, num_classes, H/8, W/8)


class ContextModule(nn.Module):
    """Basic context module: C -> C feature maps through 3x3 convs with dilations 1, 1, 2, 4, 8, 16, 1
    (each followed by ReLU) and a final 1x1 conv; receptive field 67x67. 64 C^2 weights + 8 C biases.

    Identity initialisation (paper, Sec. 3): every filter passes its own channel's centre tap,
    k_b(t, a) = [t = 0][a = b], biases 0, so the untrained module outputs ReLU of its input and
    training starts from the front end's prediction instead of from noise.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d in CONTEXT_DILATIONS:
            layers += [nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, channels, 1))
        self.layers = nn.Sequential(*layers)
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                identity_init_(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def identity_init_(conv: nn.Conv2d) -> None:
    """Weights 1 at the centre tap of channel b -> channel b, 0 elsewhere; bias 0."""
    with torch.no_grad():
        conv.weight.zero_()
        centre = (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)
        for b in range(min(conv.in_channels, conv.out_channels)):
            conv.weight[b, b, centre[0], centre[1]] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


class DilatedContextNet(nn.Module):
    """Yu & Koltun's ``Dilation8`` network: VGG-16 front end (output stride 8) + basic context module.

    Yu, Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016,
    arXiv:1511.07122. Front end 134.26 M + 4097 C parameters (VGG-16's 138.36 M without its
    1000-class fc8, with a C-class one); context module 64 C^2 + 8 C (7.8 k for C = 11).

    The 1/8 class scores are bilinearly upsampled to the input size (the official models use a
    fixed bilinear deconvolution).

    Deviations from the paper: "same" zero padding in every conv, so any input size works and the
    output is aligned with the input (the paper trains without padding on reflection-padded
    crops); pools use ``ceil_mode``; random initialisation of the front end (the paper starts from
    ImageNet VGG-16; without BatchNorm a VGG-16 trained from scratch learns slowly).
    ``fc_width`` (4096 in the paper) only exists to build small variants in tests.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, fc_width: int = FC_WIDTH) -> None:
        super().__init__()
        self.front_end = FrontEnd(num_classes, in_channels, fc_width)
        for m in self.front_end.modules():
            if isinstance(m, nn.Conv2d):
                # He initialisation (torchvision's VGG); the paper's front end starts from ImageNet
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # the official class-score layer starts near zero (std 0.001)
        nn.init.normal_(self.front_end.classifier[-1].weight, std=0.001)
        self.context = ContextModule(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) images to (B, num_classes, H, W) logits."""
        logits = self.context(self.front_end(x))  # (B, num_classes, H/8, W/8)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
