"""Test-time augmentation, sliding windows and ensembles on tiny random networks (no checkpoints)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from drivseg.errors import ConfigError
from drivseg.inference import (
    Ensemble,
    InferenceSettings,
    ModelMember,
    parse_size,
    parse_weights,
    predict_probs,
    slide_probs,
    window_starts,
)
from drivseg.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def pointwise_net(num_classes: int = 4, seed: int = 0) -> nn.Module:
    """1x1 convolutions only: every pixel is classified from its own colour (no context)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, num_classes, 1)).eval()


def context_net(num_classes: int = 4, seed: int = 0) -> nn.Module:
    """A real network with spatial context (strided 3x3 convs, bilinear upsampling)."""
    torch.manual_seed(seed)
    return build_model("tiny_fcn", num_classes).eval()


class Symmetrised(nn.Module):
    """``net`` averaged with its mirrored self: exactly equivariant to horizontal flips."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) + self.net(x.flip(-1)).flip(-1)) / 2


def images(b: int = 2, h: int = 24, w: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def member(net: nn.Module) -> ModelMember:
    return ModelMember(net, MEAN, STD).eval()


@pytest.mark.parametrize(
    "net", [pointwise_net(), Symmetrised(context_net())], ids=["1x1-convs", "symmetrised-fcn"]
)
def test_flip_tta_of_flip_equivariant_model_equals_no_tta(net) -> None:
    x = images()
    plain = predict_probs(member(net), x, InferenceSettings("none"))
    flipped = predict_probs(member(net), x, InferenceSettings("flip"))
    torch.testing.assert_close(flipped, plain, atol=1e-6, rtol=0)


def test_flip_tta_is_the_mean_of_the_image_and_its_mirror() -> None:
    m, x = member(context_net()), images()
    by_hand = (m(x) + m(x.flip(-1)).flip(-1)) / 2
    flipped = predict_probs(m, x, InferenceSettings("flip"))
    torch.testing.assert_close(flipped, by_hand)
    # the network is not flip-equivariant, so the augmentation does change its output
    assert (flipped - m(x)).abs().max() > 1e-3


def test_multi_scale_tta() -> None:
    m, x = member(context_net()), images(h=27, w=37)
    # one scale of 1.0 is flip TTA
    one_scale = predict_probs(m, x, InferenceSettings("ms", (1.0,)))
    torch.testing.assert_close(one_scale, predict_probs(m, x, InferenceSettings("flip")))
    probs = predict_probs(m, x, InferenceSettings("ms", (0.5, 0.75, 1.25)))
    assert probs.shape == (2, 4, 27, 37)  # back at the input size whatever the scales
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 27, 37))
    assert len(InferenceSettings("ms", (0.5, 0.75, 1.25)).views()) == 6  # every scale with and without mirror


def test_member_normalises_with_its_own_statistics_and_returns_softmax() -> None:
    net, x = pointwise_net(), images()
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand = net((x - mean) / std).softmax(1)
    torch.testing.assert_close(member(net)(x), by_hand)


def test_member_with_an_image_scale_answers_at_the_input_size() -> None:
    # a uniform image stays uniform at any scale, so a pointwise net's answer cannot change
    x = torch.full((1, 3, 30, 50), 0.3)
    scaled = ModelMember(pointwise_net(), MEAN, STD, image_scale=0.5)(x)
    assert scaled.shape == (1, 4, 30, 50)
    torch.testing.assert_close(scaled, member(pointwise_net())(x))


def test_ensemble_of_identical_members_equals_one_member() -> None:
    x = images()
    one = member(context_net())
    torch.testing.assert_close(Ensemble([one, member(context_net())])(x), one(x))


def test_ensemble_is_the_weighted_mean_of_member_probabilities() -> None:
    x = images()
    # different architectures and normalisations in one ensemble
    a = member(context_net(seed=0))
    b = ModelMember(pointwise_net(seed=3), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).eval()
    torch.testing.assert_close(Ensemble([a, b])(x), (a(x) + b(x)) / 2)
    torch.testing.assert_close(Ensemble([a, b], [0.6, 0.4])(x), 0.6 * a(x) + 0.4 * b(x))
    torch.testing.assert_close(Ensemble([a, b], [3, 2])(x), 0.6 * a(x) + 0.4 * b(x))  # weights are normalised


def test_ensemble_rejects_members_with_different_classes_and_bad_weights() -> None:
    x = images()
    with pytest.raises(ConfigError, match="4 and 5 classes"):
        Ensemble([member(pointwise_net(4)), member(pointwise_net(5))])(x)
    with pytest.raises(ConfigError, match="one per --ckpt"):
        Ensemble([member(pointwise_net())], [0.5, 0.5])
    with pytest.raises(ConfigError, match="one per checkpoint"):
        parse_weights("0.6,0.4", 3)


@pytest.mark.parametrize("window", [(24, 40), (32, 48)], ids=["same-size", "larger"])
def test_sliding_window_covering_the_image_equals_whole_image(window) -> None:
    m, x = member(context_net()), images(h=24, w=40)
    torch.testing.assert_close(slide_probs(m, x, window, (8, 8)), m(x))
    torch.testing.assert_close(predict_probs(m, x, InferenceSettings(window=window)), m(x))


def test_sliding_window_of_a_context_free_model_equals_whole_image() -> None:
    # overlapping windows of uneven coverage: the overlap average must give back each pixel's value
    m, x = member(pointwise_net()), images(h=24, w=40)
    torch.testing.assert_close(slide_probs(m, x, (10, 16), (4, 6)), m(x))


def test_sliding_window_averages_overlaps() -> None:
    class LeftHalf(nn.Module):
        """Class 0 on the left half of whatever window it sees, class 1 on the right."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            probs = torch.zeros(x.shape[0], 2, *x.shape[-2:])
            half = x.shape[-1] // 2
            probs[:, 0, :, :half] = 1.0
            probs[:, 1, :, half:] = 1.0
            return probs

    # width 8, window 4, stride 2: windows start at 0, 2, 4; pixels 2..5 are left in one window
    # and right in another
    probs = slide_probs(LeftHalf(), torch.zeros(1, 3, 1, 8), (1, 4), (1, 2))
    assert probs[0, 0, 0].tolist() == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0]
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 1, 8))


def test_window_starts_cover_the_image_and_stay_inside() -> None:
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(10, 4, 4) == [0, 4, 6]  # the last window is shifted inward, not padded
    assert window_starts(8, 4, 2) == [0, 2, 4]
    assert window_starts(3, 4, 2) == [0]


def test_bad_settings_fail_with_the_flag_name() -> None:
    with pytest.raises(ConfigError, match="--stride 9x9 must be between 1 and the window 8x8"):
        InferenceSettings(window=(8, 8), stride=(9, 9))
    with pytest.raises(ConfigError, match="--stride needs --slide"):
        InferenceSettings(stride=(4, 4))
    with pytest.raises(ConfigError, match="--slide '512'"):
        parse_size("512", "--slide")
    with pytest.raises(ConfigError, match="--tta"):
        InferenceSettings("hflip")
    assert parse_size("512x1024", "--slide") == (512, 1024)
