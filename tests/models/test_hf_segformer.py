"""hf_segformer: transformers' SegFormer by model id or save_pretrained() folder; no hub needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.models import ARCHS, build_model
from drivseg.models.hf_segformer import build_hf_segformer

try:
    import transformers
except ImportError:  # optional: only the missing-package message is testable then
    transformers = None

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_transformers = pytest.mark.skipif(transformers is None, reason="optional transformers not installed")

NUM_CLASSES = 5
HEIGHT, WIDTH = 67, 93  # odd, not a multiple of the 32 stride
# a SegFormer small enough to save and load in milliseconds
TINY = {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "num_attention_heads": [1, 1, 1, 1],
        "decoder_hidden_size": 16}  # fmt: skip


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def saved_folder(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A 3-class tiny SegFormer written with save_pretrained(), and the model itself."""
    torch.manual_seed(0)
    model = transformers.SegformerForSemanticSegmentation(transformers.SegformerConfig(num_labels=3, **TINY))
    model.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny", model


@needs_transformers
def test_registered_and_default_is_segformer_b0_with_the_paper_size() -> None:
    assert ARCHS["hf_segformer"] is build_hf_segformer
    model = build_model("hf_segformer", 19)  # nvidia/mit-b0 layout, random init, no download
    # SegFormer paper, Table 1: SegFormer-B0 (19 Cityscapes classes) about 3.7 M parameters
    assert abs(_n_params(model) - 3.7e6) / 3.7e6 < 0.02, _n_params(model)
    assert _n_params(build_model("hf_segformer", 19, "nvidia/mit-b2")) > 3 * _n_params(model)


@needs_transformers
def test_folder_weights_load_and_another_class_count_reinitialises_only_the_classifier(saved_folder) -> None:
    folder, saved = saved_folder
    model = build_hf_segformer(num_classes=NUM_CLASSES, encoder=str(folder)).eval()
    hf = model.net.model  # PadToMultiple -> HFSegformer -> SegformerForSemanticSegmentation
    ours, theirs = hf.state_dict(), saved.state_dict()
    for key, value in theirs.items():
        if key.startswith("decode_head.classifier."):
            assert ours[key].shape[0] == NUM_CLASSES  # 3 saved classes -> 5
        else:
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)
    # same classes as saved: the network computes exactly what the saved model computes
    same = build_hf_segformer(num_classes=3, encoder=str(folder)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = saved.eval()(pixel_values=x).logits
        expected = F.interpolate(expected, size=(64, 96), mode="bilinear", align_corners=False)
        torch.testing.assert_close(same(x), expected)


@needs_transformers
def test_train_step_at_an_odd_size_keeps_the_size_and_reaches_every_parameter(saved_folder) -> None:
    folder, _ = saved_folder
    model = build_hf_segformer(num_classes=NUM_CLASSES, encoder=str(folder)).train()
    x = torch.randn(2, 3, HEIGHT, WIDTH)
    target = torch.randint(0, NUM_CLASSES, (2, HEIGHT, WIDTH))
    target[:, :6] = IGNORE_INDEX
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES, HEIGHT, WIDTH) and torch.isfinite(logits).all()
    F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 20, 24)).shape == (1, NUM_CLASSES, 20, 24)  # below one stride


@needs_transformers
def test_in_channels_reach_the_patch_embedding(saved_folder) -> None:
    folder, _ = saved_folder
    model = build_hf_segformer(num_classes=2, encoder=str(folder), in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 40, 40)).shape == (1, 2, 40, 40)


def test_missing_transformers_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # ``import transformers`` raises ImportError
    with pytest.raises(ConfigError, match="pip install transformers") as info:
        build_model("hf_segformer", NUM_CLASSES)
    assert "\n" not in str(info.value)


def _offline(monkeypatch) -> None:
    """The hub unreachable, as with HF_HUB_OFFLINE=1 in CI (read by huggingface_hub at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@needs_transformers
@pytest.mark.parametrize(
    "encoder, weights",
    [("nvidia/mit-b0", "imagenet"), ("someone/segformer-custom", None)],
    ids=["hub-weights", "hub-config"],
)
def test_a_model_id_offline_fails_in_one_line(monkeypatch, encoder, weights) -> None:
    _offline(monkeypatch)
    with pytest.raises(ConfigError) as info:
        build_model("hf_segformer", NUM_CLASSES, encoder, weights)
    message = str(info.value)
    assert "\n" not in message
    assert encoder in message and "HF_HUB_OFFLINE" in message and "save_pretrained" in message


@needs_transformers
@pytest.mark.parametrize(
    "encoder, weights, expected",
    [
        ("./no/such/folder", None, "no such folder"),
        (None, "weights.pt", "none or imagenet"),
    ],
)
def test_bad_sources_fail_in_one_line(encoder, weights, expected) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        build_hf_segformer(num_classes=NUM_CLASSES, encoder=encoder, encoder_weights=weights)
    assert "\n" not in str(info.value)


@needs_transformers
def test_a_file_or_a_folder_without_a_model_is_refused(tmp_path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="is a file"):
        build_hf_segformer(num_classes=NUM_CLASSES, encoder=str(tmp_path / "model.bin"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="save_pretrained") as info:
        build_hf_segformer(num_classes=NUM_CLASSES, encoder=str(tmp_path / "empty"))
    assert "\n" not in str(info.value)
