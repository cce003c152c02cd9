"""Every SMP architecture of the registry: odd input sizes, gradients, padding, bad names."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.models import ARCHS, build_model
from drivseg.models.padding import PadToMultiple
from drivseg.models.smp_models import SMP_ARCHS

NUM_CLASSES = 5
HEIGHT, WIDTH = 72, 104  # neither is a multiple of 16 or 32

# small encoders: ResNet-18 (the project's fallback default) unless the architecture needs another
SMALL_ENCODER = "resnet18"
ENCODERS = {
    "segformer": "mit_b0",  # SegFormer needs a Mix Transformer
    "dpt": "tu-vit_tiny_patch16_224",  # DPT needs a ViT
}
# PSPNet keeps encoder_depth=3, so it reads the ResNet up to layer2. SMP's ResNet encoder skips
# later stages in forward but still holds them: they exist, are never used, get no gradient.
# DPT reads intermediate ViT blocks; timm's final LayerNorm and classifier head stay unused.
UNUSED_PARAMS = {
    "pspnet": ("net.encoder.layer3.", "net.encoder.layer4."),
    "dpt": ("net.encoder.model.norm.", "net.encoder.model.head."),
}

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run this module single-threaded: on a busy 2-core machine two OpenMP threads wait on each
    other and a forward/backward pass takes seconds instead of ~0.1 s."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _arch_params() -> list:
    params = []
    for arch in SMP_ARCHS:
        params.append(pytest.param(arch, id=arch))
    return params


def test_registry_exposes_every_smp_architecture() -> None:
    expected = {
        "unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus",
        "linknet", "manet", "pan", "upernet", "segformer", "dpt",
    }
    assert set(SMP_ARCHS) == expected
    assert expected <= set(ARCHS)


@pytest.mark.parametrize("arch", _arch_params())
def test_forward_backward_at_odd_size(arch: str) -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.get(arch, SMALL_ENCODER)
    net = build_model(arch, num_classes=NUM_CLASSES, encoder=encoder, encoder_weights=None).train()
    x = torch.randn(2, 3, HEIGHT, WIDTH)
    target = torch.randint(0, NUM_CLASSES, (2, HEIGHT, WIDTH))
    target[:, :6] = IGNORE_INDEX

    out = net(x)
    logits = out["out"] if isinstance(out, dict) else out
    assert logits.shape == (2, NUM_CLASSES, HEIGHT, WIDTH)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX).backward()

    unused_prefixes = UNUSED_PARAMS.get(arch, ())
    missing, not_finite, unused = [], [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(unused_prefixes):
            unused.append(name)
            assert p.grad is None, f"{name} was expected to be unused but got a gradient"
        elif p.grad is None:
            missing.append(name)
        elif not torch.isfinite(p.grad).all():
            not_finite.append(name)
    assert not missing, f"parameters without gradient: {missing[:10]}"
    assert not not_finite, f"parameters with NaN/inf gradient: {not_finite[:10]}"
    assert bool(unused) == bool(unused_prefixes)


def test_pan_works_from_128_pixels() -> None:
    # PAN at a size it supports (120x136 is padded to 128x144): the failure above is about size only
    torch.manual_seed(0)
    net = build_model("pan", num_classes=NUM_CLASSES, encoder=SMALL_ENCODER, encoder_weights=None).train()
    out = net(torch.randn(2, 3, 120, 136))
    assert out.shape == (2, NUM_CLASSES, 120, 136)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


# ---------------------------------------------------------------- PadToMultiple


def test_padding_equals_manual_zero_pad_and_crop() -> None:
    torch.manual_seed(0)
    wrapped = build_model("fpn", num_classes=NUM_CLASSES, encoder=SMALL_ENCODER, encoder_weights=None).eval()
    assert isinstance(wrapped, PadToMultiple) and wrapped.multiple == 32
    x = torch.randn(1, 3, HEIGHT, WIDTH)
    padded = torch.zeros(1, 3, 96, 128)  # next multiples of 32, zeros at the bottom and right
    padded[..., :HEIGHT, :WIDTH] = x
    with torch.no_grad():
        expected = wrapped.net(padded)[..., :HEIGHT, :WIDTH]
        out = wrapped(x)
    assert out.shape == (1, NUM_CLASSES, HEIGHT, WIDTH)
    assert torch.allclose(out, expected, atol=1e-5)


class _RecordingNet(nn.Module):
    """Returns its input's first channel as logits (full res) and a 2x-pooled copy as aux."""

    def __init__(self, with_aux: bool) -> None:
        super().__init__()
        self.with_aux = with_aux
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor):
        self.seen.append(tuple(x.shape))
        out = x[:, :1]
        if not self.with_aux:
            return out
        return {"out": out, "aux": [F.avg_pool2d(out, 2)]}


def test_padding_leaves_sizes_that_fit_untouched() -> None:
    net = _RecordingNet(with_aux=False)
    x = torch.randn(1, 3, 64, 96)
    out = PadToMultiple(net, 32)(x)
    assert net.seen == [(1, 3, 64, 96)]
    assert torch.equal(out, x[:, :1])


def test_padding_crops_aux_outputs_by_the_same_fraction() -> None:
    net = _RecordingNet(with_aux=True)
    x = torch.rand(1, 3, 40, 50) + 1  # positive, so the zero padding is recognisable
    out = PadToMultiple(net, 32)(x)
    assert net.seen == [(1, 3, 64, 64)]
    assert torch.equal(out["out"], x[:, :1])
    # aux is 32x32 for the 64x64 padded input; 40/64 and 50/64 of it is 20x25
    (aux,) = out["aux"]
    assert aux.shape == (1, 1, 20, 25)
    assert torch.allclose(aux, F.avg_pool2d(x[:, :1], 2))
    assert (aux > 0).all()  # no padded (zero) pixel survived the crop


# ---------------------------------------------------------------- bad names


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("unet3", num_classes=NUM_CLASSES)
    message = str(err.value)
    assert "'unet3'" in message
    for arch in SMP_ARCHS:
        assert arch in message


def test_unknown_encoder_suggests_similar_names() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("unet", num_classes=NUM_CLASSES, encoder="resnet19", encoder_weights=None)
    message = str(err.value)
    assert "'resnet19'" in message
    assert "resnet18" in message


def test_unknown_timm_encoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tu-not_a_model"):
        build_model("unet", num_classes=NUM_CLASSES, encoder="tu-not_a_model", encoder_weights=None)
