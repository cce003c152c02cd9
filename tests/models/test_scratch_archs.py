"""Behaviour of the from-scratch architectures: registry contract, shapes, gradients, sizes."""

from __future__ import annotations

import math

import pytest
import torch

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.models.scratch import SCRATCH_ARCHS
from drivseg.models.scratch.deeplabv3plus import DeepLabV3Plus
from drivseg.models.scratch.unet import UNet
from tests.models.training_checks import assert_backward_reaches_every_parameter, fixed_batch_losses

ARCH_NAMES = sorted(SCRATCH_ARCHS)
AUX_ARCHS = {"scratch_pspnet"}
NUM_CLASSES = 5


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_names_are_the_documented_ones() -> None:
    assert set(SCRATCH_ARCHS) == {
        "scratch_unet", "scratch_pspnet", "scratch_deeplabv3plus", "scratch_segformer", "fast_scnn"
    }


@pytest.mark.parametrize("name", ARCH_NAMES)
@pytest.mark.parametrize("batch,height,width", [(2, 100, 130), (1, 360, 480)])
def test_train_step_keeps_input_size_and_reaches_every_parameter(
    name: str, batch: int, height: int, width: int
) -> None:
    torch.manual_seed(0)
    model = SCRATCH_ARCHS[name](num_classes=NUM_CLASSES).train()
    x = torch.randn(batch, 3, height, width)
    target = torch.randint(0, NUM_CLASSES, (batch, height, width))
    target[:, :8] = IGNORE_INDEX  # a void band at the top, as in real masks

    out = model(x)
    assert isinstance(out, dict) == (name in AUX_ARCHS)
    logits = out["out"] if isinstance(out, dict) else out
    assert logits.shape == (batch, NUM_CLASSES, height, width)
    assert torch.isfinite(logits).all()

    assert_backward_reaches_every_parameter(model, out, target)


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_eval_mode_returns_a_tensor_independent_of_the_rest_of_the_batch(name: str) -> None:
    torch.manual_seed(0)
    model = SCRATCH_ARCHS[name](num_classes=NUM_CLASSES, in_channels=1).eval()
    x = torch.randn(2, 1, 72, 88)
    with torch.no_grad():
        both = model(x)
        first_alone = model(x[:1])
        again = model(x)
    assert isinstance(both, torch.Tensor)
    assert both.shape == (2, NUM_CLASSES, 72, 88)
    # eval mode must use running BatchNorm statistics and switch dropout / drop-path off
    torch.testing.assert_close(first_alone, both[:1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, both)


def test_pspnet_aux_logits_come_from_the_stride_8_features() -> None:
    model = SCRATCH_ARCHS["scratch_pspnet"](num_classes=NUM_CLASSES).train()
    out = model(torch.randn(2, 3, 100, 130))
    assert set(out) == {"out", "aux"}
    # output stride 8 with "same" padding: ceil(100 / 8) = 13, ceil(130 / 8) = 17
    assert out["aux"].shape == (2, NUM_CLASSES, 13, 17)


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_a_few_steps_fit_a_fixed_batch(name: str) -> None:
    torch.manual_seed(0)
    losses = fixed_batch_losses(SCRATCH_ARCHS[name](num_classes=3).train())
    assert losses[-1] < 0.7 * losses[0], losses


def test_segformer_b0_parameter_count_matches_the_paper() -> None:
    # SegFormer paper (arXiv:2105.15203), Table 1: MiT-B0 encoder 3.4 M + decoder 0.4 M; the
    # 19-class (Cityscapes) SegFormer-B0 has about 3.7 M parameters
    n = _n_params(SCRATCH_ARCHS["scratch_segformer"](num_classes=19))
    assert abs(n - 3.7e6) / 3.7e6 < 0.10, n


def test_fast_scnn_parameter_count_matches_the_paper() -> None:
    # Fast-SCNN paper (arXiv:1902.04502): 1.11 M parameters for 19 Cityscapes classes
    n = _n_params(SCRATCH_ARCHS["fast_scnn"](num_classes=19))
    assert abs(n - 1.11e6) / 1.11e6 < 0.10, n


def test_unet_at_paper_width_has_the_paper_network_size() -> None:
    # the paper's network (1 input channel, 2 classes, width 64) has 31.03 M conv weights;
    # BatchNorm adds about 12 k
    n64 = _n_params(UNet(num_classes=2, in_channels=1, base_width=64))
    assert abs(n64 - 31.03e6) / 31.03e6 < 0.01, n64
    # halving every width divides the (quadratic) conv weights by about 4
    n32 = _n_params(UNet(num_classes=2, in_channels=1))
    assert 0.24 < n32 / n64 < 0.26


@pytest.mark.parametrize("up_mode", ["transpose", "bilinear"])
def test_unet_up_modes_handle_odd_sizes(up_mode: str) -> None:
    model = UNet(num_classes=NUM_CLASSES, base_width=8, up_mode=up_mode).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 37, 53))
    assert out.shape == (1, NUM_CLASSES, 37, 53)


def test_unet_rejects_an_unknown_up_mode() -> None:
    with pytest.raises(ConfigError, match="up_mode"):
        UNet(num_classes=2, up_mode="nearest")


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplabv3plus_output_stride_sets_the_feature_map_size(output_stride: int) -> None:
    model = DeepLabV3Plus(num_classes=NUM_CLASSES, output_stride=output_stride).eval()
    x = torch.randn(1, 3, 100, 130)
    with torch.no_grad():
        low, high = model.backbone(x)
        out = model(x)
    # stride-2 convs with "same" padding give ceil(size / stride)
    assert high.shape[-2:] == (math.ceil(100 / output_stride), math.ceil(130 / output_stride))
    assert low.shape[-2:] == (25, 33)  # stride 4: ceil(100 / 4), ceil(130 / 4)
    assert out.shape == (1, NUM_CLASSES, 100, 130)


def test_deeplabv3plus_rejects_an_unsupported_output_stride() -> None:
    with pytest.raises(ConfigError, match="output_stride"):
        DeepLabV3Plus(num_classes=2, output_stride=32)


def test_segformer_works_when_stage_maps_are_smaller_than_the_reduction_ratio() -> None:
    # 24x40 input: stage 1 is 6x10, smaller than its spatial-reduction ratio 8
    model = SCRATCH_ARCHS["scratch_segformer"](num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 24, 40))
    assert out.shape == (1, NUM_CLASSES, 24, 40)


@pytest.mark.parametrize("name", ARCH_NAMES)
@pytest.mark.parametrize(
    "kwargs", [{"encoder": "resnet34"}, {"encoder_weights": "imagenet"}], ids=["encoder", "weights"]
)
def test_encoder_arguments_are_rejected(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="built from scratch and takes no --encoder") as info:
        SCRATCH_ARCHS[name](num_classes=NUM_CLASSES, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("weights", [None, "none", "None"])
def test_no_encoder_weights_is_accepted(weights) -> None:
    model = SCRATCH_ARCHS["fast_scnn"](num_classes=NUM_CLASSES, encoder=None, encoder_weights=weights)
    assert isinstance(model, torch.nn.Module)


def test_names_do_not_collide_with_the_smp_architectures() -> None:
    from drivseg.models.smp_models import SMP_ARCHS

    assert not set(SCRATCH_ARCHS) & set(SMP_ARCHS)
