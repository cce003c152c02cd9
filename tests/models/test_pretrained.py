"""Offline EfficientNet-Lite ImageNet weights and local encoder state dicts."""

from __future__ import annotations

from collections import OrderedDict
from functools import cache

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from skimage import data

from drivseg.errors import ConfigError
from drivseg.models.pretrained import (
    OFFLINE_IMAGENET,
    efficientnet_lite_state_dict,
    imagenet_unavailable_message,
    lite_weights_path,
    load_encoder_imagenet_offline,
    load_encoder_state_dict,
    load_timm_efficientnet_lite,
    map_lite_state_dict,
)

# ImageNet-1k class ids chosen from what each photo shows, not from any model's output
TABBY, TIGER_CAT, EGYPTIAN_CAT = 281, 282, 285
ESPRESSO, CUP = 967, 968
MOPED, MOTOR_SCOOTER = 665, 670  # ImageNet has no "motorcycle"; these are its motorbike classes
PHOTOS = {
    "chelsea (cat)": (lambda: data.chelsea(), {TABBY, TIGER_CAT, EGYPTIAN_CAT}),
    "coffee (cup)": (lambda: data.coffee(), {ESPRESSO, CUP}),
    "motorcycle": (lambda: data.stereo_motorcycle()[0], {MOPED, MOTOR_SCOOTER}),
}
NATIVE_SIZE = {"tf_efficientnet_lite0": 224, "tf_efficientnet_lite1": 240, "tf_efficientnet_lite2": 260}


@cache
def _imagenet_input(photo: str, size: int) -> torch.Tensor:
    image: np.ndarray = PHOTOS[photo][0]()
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(OFFLINE_IMAGENET["tf_efficientnet_lite0"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(OFFLINE_IMAGENET["tf_efficientnet_lite0"]["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


def _top1_per_photo(model: torch.nn.Module, size: int) -> dict[str, int]:
    model.eval()
    with torch.no_grad():
        return {name: int(model(_imagenet_input(name, size)).argmax()) for name in PHOTOS}


def _classifier(variant: str, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = timm.create_model(variant, pretrained=False)
    model.load_state_dict(weights)
    return model


@pytest.fixture(scope="module")
def lite0_weights() -> dict[str, torch.Tensor]:
    return efficientnet_lite_state_dict("tf_efficientnet_lite0")


@pytest.fixture(scope="module")
def lite0_package_state() -> "OrderedDict[str, torch.Tensor]":
    return torch.load(lite_weights_path("tf_efficientnet_lite0"), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("variant", sorted(NATIVE_SIZE))
def test_mapped_classifier_recognises_photos(variant: str) -> None:
    model = timm.create_model(variant, pretrained=False)
    report = load_timm_efficientnet_lite(model, variant)
    assert report.loaded == len(model.state_dict())
    top1 = _top1_per_photo(model, NATIVE_SIZE[variant])
    wrong = {name: top1[name] for name, (_, expected) in PHOTOS.items() if top1[name] not in expected}
    assert not wrong, f"{variant} top-1 outside the expected classes: {wrong}"


def test_photo_check_rejects_a_wrong_mapping(lite0_weights) -> None:
    # negative control: swapping each BatchNorm's weight and bias keeps every shape, so only the
    # predictions can reveal it; if this passed the photo test above would prove nothing
    swapped = dict(lite0_weights)
    for key in lite0_weights:
        if key.endswith(".bias") and "bn" in key:
            weight_key = key[: -len("bias")] + "weight"
            swapped[key], swapped[weight_key] = lite0_weights[weight_key], lite0_weights[key]
    top1 = _top1_per_photo(_classifier("tf_efficientnet_lite0", swapped), 224)
    assert any(top1[name] not in expected for name, (_, expected) in PHOTOS.items())


def test_mapping_pairs_known_equivalent_tensors(lite0_weights, lite0_package_state) -> None:
    # EfficientNet-PyTorch name -> timm name, from the two projects' module definitions
    same_tensor = {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_var": "bn1.running_var",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",  # first block has no expansion
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn2.bias": "blocks.1.0.bn3.bias",
        "_blocks.2._project_conv.weight": "blocks.1.1.conv_pwl.weight",  # stage 1 has two blocks
        "_blocks.15._project_conv.weight": "blocks.6.0.conv_pwl.weight",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.weight": "bn2.weight",
        "_fc.bias": "classifier.bias",
    }
    for package_key, timm_key in same_tensor.items():
        assert torch.equal(lite0_weights[timm_key], lite0_package_state[package_key]), (package_key, timm_key)


def test_mapping_names_first_shape_mismatch(lite0_package_state) -> None:
    broken = OrderedDict(lite0_package_state)
    broken["_blocks.3._bn1.bias"] = torch.zeros(7)
    with pytest.raises(ConfigError, match=r"_blocks\.3\._bn1\.bias.*\(7,\).*blocks\.2\.0\.bn2\.bias"):
        map_lite_state_dict(broken, "tf_efficientnet_lite0")


def test_mapping_rejects_weights_of_another_variant(lite0_package_state) -> None:
    with pytest.raises(ConfigError, match="296 tensors.*386"):
        map_lite_state_dict(lite0_package_state, "tf_efficientnet_lite1")


def test_mapping_rejects_reordered_identical_blocks(lite0_package_state) -> None:
    # blocks 12 and 13 (timm blocks.5.1 / 5.2) have identical shapes; swapping them barely changes
    # the predictions, so the block numbers are what must catch it
    items = list(lite0_package_state.items())
    block12 = [kv for kv in items if kv[0].startswith("_blocks.12.")]
    block13 = [kv for kv in items if kv[0].startswith("_blocks.13.")]
    start = items.index(block12[0])
    items[start : start + len(block12) + len(block13)] = block13 + block12
    with pytest.raises(ConfigError, match=r"_blocks\.13\..*blocks\.5\.1\..*block 13"):
        map_lite_state_dict(OrderedDict(items), "tf_efficientnet_lite0")


def test_unknown_variant_lists_available() -> None:
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0, tf_efficientnet_lite1"):
        efficientnet_lite_state_dict("tf_efficientnet_lite4")


def test_smp_encoder_gets_the_classifier_weights_and_features(lite0_weights) -> None:
    full = _classifier("tf_efficientnet_lite0", lite0_weights).eval()
    net = smp.Unet("tu-tf_efficientnet_lite0", encoder_weights=None, classes=3).eval()
    report = load_encoder_imagenet_offline(net, "tf_efficientnet_lite0")

    encoder_state = net.encoder.model.state_dict()
    assert report.missing == []
    # the features model drops exactly the ImageNet head: conv_head, bn2 and classifier
    assert sorted(report.unexpected) == sorted(
        ["conv_head.weight", "classifier.weight", "classifier.bias"]
        + [f"bn2.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    )
    assert report.loaded == len(encoder_state) == len(lite0_weights) - 8
    for key, tensor in encoder_state.items():
        assert torch.equal(tensor, full.state_dict()[key]), key

    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        features = net.encoder(x)  # [x, 1/2, 1/4, 1/8, 1/16, 1/32]
        h = full.bn1(full.conv_stem(x))
        expected = [x]
        for index, stage in enumerate(full.blocks):
            h = stage(h)
            if index in (0, 1, 2, 4, 6):  # last stage at each stride
                expected.append(h)
    assert [f.shape[-1] for f in features] == [96, 48, 24, 12, 6, 3]
    for got, want in zip(features, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_registry_entry_loads_a_wrapped_single_channel_model(lite0_weights) -> None:
    entry = OFFLINE_IMAGENET["tf_efficientnet_lite0"]
    assert OFFLINE_IMAGENET["tu-tf_efficientnet_lite0"] is entry
    assert entry["smp_encoder"] == "tu-tf_efficientnet_lite0"
    assert entry["mean"] == entry["std"] == (0.5, 0.5, 0.5)

    class Wrapper(torch.nn.Module):  # stands in for padding / Lightning wrappers around the SMP net
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

    net = smp.FPN(entry["smp_encoder"], encoder_weights=None, in_channels=1, classes=2)
    report = entry["loader"](Wrapper(net))
    assert report.loaded == len(net.encoder.model.state_dict())
    # one grey channel sees R = G = B, so the RGB filters add up
    stem = lite0_weights["conv_stem.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(net.encoder.model.conv_stem.weight, stem)
    expand = net.encoder.model.blocks[3][0].conv_pw.weight
    assert torch.equal(expand, lite0_weights["blocks.3.0.conv_pw.weight"])


def test_offline_loader_rejects_mismatched_encoders() -> None:
    lite1_net = smp.Unet("tu-tf_efficientnet_lite1", encoder_weights=None, classes=2)
    wanted = "encoder_name='tu-tf_efficientnet_lite0'"
    with pytest.raises(ConfigError, match=f"built as tu-tf_efficientnet_lite1.*{wanted}"):
        load_encoder_imagenet_offline(lite1_net, "tf_efficientnet_lite0")
    with pytest.raises(ConfigError, match="no offline ImageNet weights for encoder 'resnet18'"):
        load_encoder_imagenet_offline(lite1_net, "resnet18")


def test_classifier_loader_rejects_another_variant() -> None:
    lite1 = timm.create_model("tf_efficientnet_lite1", pretrained=False)
    with pytest.raises(ConfigError, match="not timm's tf_efficientnet_lite0 classifier"):
        load_timm_efficientnet_lite(lite1, "tf_efficientnet_lite0")


def _two_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    source = smp.Unet("resnet18", encoder_weights=None, classes=2, decoder_channels=(16, 8, 8, 8, 8))
    torch.manual_seed(1)
    fresh = smp.Unet("resnet18", encoder_weights=None, classes=2, decoder_channels=(16, 8, 8, 8, 8))
    assert not torch.equal(source.encoder.conv1.weight, fresh.encoder.conv1.weight)
    return source, fresh


@pytest.mark.parametrize("layout", ["encoder keys", "whole model", "lightning checkpoint"])
def test_encoder_state_dict_round_trip(tmp_path, layout: str) -> None:
    source, fresh = _two_models()
    path = tmp_path / "encoder.pth"
    saved = {
        "encoder keys": source.encoder.state_dict(),
        "whole model": source.state_dict(),
        # a LightningModule holding the wrapped network as self.model.net
        "lightning checkpoint": {
            "epoch": 3,
            "state_dict": {f"model.net.{k}": v for k, v in source.state_dict().items()},
        },
    }[layout]
    torch.save(saved, path)

    missing, unexpected = load_encoder_state_dict(fresh, path)

    assert missing == []
    decoder_keys = [k for k in source.state_dict() if not k.startswith("encoder.")]
    if layout == "encoder keys":
        assert unexpected == []
    else:
        prefix = "model.net." if layout == "lightning checkpoint" else ""
        assert sorted(unexpected) == sorted(prefix + k for k in decoder_keys)
    for key, tensor in source.encoder.state_dict().items():
        assert torch.equal(fresh.encoder.state_dict()[key], tensor), key


def test_encoder_state_dict_with_prefixed_partial_keys(tmp_path) -> None:
    source, fresh = _two_models()
    partial = {f"encoder.{k}": v for k, v in source.encoder.state_dict().items() if k.startswith("layer1.")}
    torch.save(partial, tmp_path / "layer1.pth")

    missing, unexpected = load_encoder_state_dict(fresh, tmp_path / "layer1.pth")

    assert unexpected == []
    assert "conv1.weight" in missing and not any(k.startswith("layer1.") for k in missing)
    assert torch.equal(fresh.encoder.layer1[0].conv1.weight, source.encoder.layer1[0].conv1.weight)


class _NotATensor:
    """Arbitrary pickled objects are refused by ``weights_only=True``."""


def test_encoder_state_dict_errors_are_one_line(tmp_path) -> None:
    _, fresh = _two_models()
    torch.save({"backbone.stem.weight": torch.zeros(2), "head.bias": torch.zeros(1)}, tmp_path / "other.pth")
    torch.save({"conv1.weight": torch.zeros(2, 3)}, tmp_path / "wrong_shape.pth")
    torch.save({"conv1.weight": _NotATensor()}, tmp_path / "pickled_object.pth")
    cases = {
        "pickled_object.pth": "cannot be read as a weights-only state dict",
        "other.pth": "none of its 2 keys",
        "wrong_shape.pth": r"'conv1.weight' has shape \(2, 3\)",
        "absent.pth": "no such file",
    }
    for name, pattern in cases.items():
        with pytest.raises(ConfigError, match=pattern) as info:
            load_encoder_state_dict(fresh, tmp_path / name)
        assert "\n" not in str(info.value)


def test_imagenet_unavailable_message_names_download_source_and_offline_options() -> None:
    smp_line = imagenet_unavailable_message("resnet34")
    timm_line = imagenet_unavailable_message("tu-resnet34")
    for line in (smp_line, timm_line):
        assert "\n" not in line
        assert "needs internet" in line
        assert "tf_efficientnet_lite0/lite1/lite2" in line and "--encoder-weights PATH" in line
    # the hosts SMP 0.6 and timm 1.0 actually contact for these encoders (seen failing offline)
    assert "https://huggingface.co/smp-hub/resnet34.imagenet" in smp_line
    assert "https://huggingface.co/timm/resnet34" in timm_line
    assert "works offline" in imagenet_unavailable_message("tf_efficientnet_lite0")
    assert "no ImageNet weights are known" in imagenet_unavailable_message("not_an_encoder")
