"""export.py and drivseg.export: parity with PyTorch per architecture family, metadata, bad checkpoints."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch

import export as export_script
import predict
from drivseg.data.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError
from drivseg.export import (
    PARITY_TOLERANCE,
    OnnxRunner,
    export_onnx,
    export_torchscript,
    max_logit_difference,
    model_metadata,
    read_onnx_metadata,
    read_torchscript_metadata,
)
from drivseg.models import build_model

from tests.conftest import train_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

eval_script = importlib.import_module("eval")

CONFIG = {
    "arch": "unet", "encoder": "resnet18", "data": "camvid", "num_classes": 3,
    "class_names": ["road", "car", "sky"], "palette": [[128, 64, 128], [0, 0, 142], [70, 130, 180]],
    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "image_scale": 0.5,
}  # fmt: skip
# every family of the registry: SMP CNN decoders, an SMP transformer, from-scratch networks
ARCHS = ["unet", "fpn", "deeplabv3plus", "segformer", "fast_scnn", "scratch_segformer"]
# reading-list architectures; tests/models/test_reading_list_archs.py checks dilated_context (a narrow
# variant: the 134 M-parameter VGG-16 writes a 537 MB file) and hrnet with O(1) logits (its official
# std-0.001 initialisation gives ~1e-18 logits here)
ARCHS += ["hrnet", "segmenter", "bisenetv2"]
ARCHS.append(pytest.param("hf_segformer", marks=pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="optional package transformers not installed")))
# adaptive average pooling (pyramid pooling bins 1, 2, 3, 6) has no dynamic-size ONNX form
STATIC_ONNX_ONLY = {"fast_scnn"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("trained"))


def network(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch, 3, encoder_weights=None).eval()


def images(b: int, h: int, w: int) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(h * w))


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_matches_pytorch(arch, tmp_path) -> None:
    net = network(arch)
    meta = model_metadata(CONFIG | {"arch": arch})
    onnx_file = tmp_path / "model.onnx"
    if arch in STATIC_ONNX_ONLY:
        with pytest.raises(ConfigError, match="adaptive average pooling.*cannot be exported with --dynamic"):
            export_onnx(net, onnx_file, images(1, 64, 64), meta, dynamic=True, arch=arch)
        with pytest.raises(ConfigError, match="multiples of 192"):
            export_onnx(net, onnx_file, images(1, 64, 64), meta, dynamic=False, arch=arch)
        export_onnx(net, onnx_file, images(1, 192, 192), meta, dynamic=False, arch=arch)
        assert max_logit_difference(net, OnnxRunner(onnx_file), images(1, 192, 192)) < PARITY_TOLERANCE
        return
    export_onnx(net, onnx_file, images(1, 64, 64), meta, dynamic=True, arch=arch)
    runner = OnnxRunner(onnx_file)
    assert runner.fixed_size is None and runner.fixed_batch is None
    # odd sizes and another batch: the stride padding must follow the input, not the 64x64 it was
    # traced at (a frozen padding gives wrong logits or a shape error here)
    for b, h, w in [(1, 64, 64), (2, 75, 53)]:
        assert max_logit_difference(net, runner, images(b, h, w)) < PARITY_TOLERANCE


@pytest.mark.parametrize("arch", ["unet", "fast_scnn"])  # stride padding; adaptive pooling (no dynamic ONNX)
def test_torchscript_matches_pytorch_at_any_size(arch, tmp_path) -> None:
    net = network(arch)
    export_torchscript(net, tmp_path / "model.pt", images(1, 64, 64), model_metadata(CONFIG | {"arch": arch}))
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    for b, h, w in [(1, 64, 64), (2, 75, 53)]:
        assert max_logit_difference(net, loaded, images(b, h, w)) < PARITY_TOLERANCE


def test_metadata_round_trips_through_onnx_and_torchscript(tmp_path) -> None:
    net = network("tiny_fcn")
    meta = model_metadata(CONFIG | {"arch": "tiny_fcn"})
    export_onnx(net, tmp_path / "m.onnx", images(1, 32, 32), meta, dynamic=False)
    export_torchscript(net, tmp_path / "m.pt", images(1, 32, 32), meta)
    for read in (read_onnx_metadata(tmp_path / "m.onnx"), read_torchscript_metadata(tmp_path / "m.pt")):
        assert read == meta
        assert read["class_names"] == ["road", "car", "sky"] and read["palette"][1] == [0, 0, 142]
        assert read["mean"] == CONFIG["mean"] and read["std"] == CONFIG["std"] and read["image_scale"] == 0.5
    # a model exported at a fixed size still answers other sizes (resized in, logits resized out)
    assert OnnxRunner(tmp_path / "m.onnx")(images(2, 40, 24)).shape == (2, 3, 40, 24)


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_script_carries_the_classes_and_checks_parity(trained, tmp_path, capsys, fmt, suffix) -> None:
    _, ckpt = trained
    out = tmp_path / f"model{suffix}"
    argv = ["--ckpt", str(ckpt), "--format", fmt, "--output", str(out), "--dynamic", "--height", "48",
            "--width", "64", "--benchmark", "3"]
    assert export_script.main(argv) == 0
    meta = read_onnx_metadata(out) if fmt == "onnx" else read_torchscript_metadata(out)
    assert meta["class_names"] == list(CAMVID_CLASSES)
    assert meta["palette"] == [list(c) for c in CAMVID_PALETTE]
    assert meta["arch"] == "tiny_fcn"
    printed = capsys.readouterr().out
    assert printed.count("parity vs PyTorch") == 2 and printed.count(" OK") == 2  # export size + another size
    assert "ratio" in printed


def test_export_that_only_works_at_the_traced_size_is_refused(tmp_path, capsys) -> None:
    # scratch_unet pads odd feature maps in a Python ``if``: tracing at 48x64 (no odd maps) freezes it
    _, ckpt = train_tiny_checkpoint(tmp_path, arch="scratch_unet")
    out = tmp_path / "model.onnx"
    argv = ["--ckpt", str(ckpt), "--format", "onnx", "--output", str(out), "--dynamic", "--height", "48",
            "--width", "64"]
    assert run_entry_point(lambda: export_script.main(argv)) == 2
    captured = capsys.readouterr()
    assert "parity vs PyTorch at 1x3x48x64" in captured.out and "FAILED" in captured.out
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "scratch_unet differs from PyTorch at 2x3x85x85" in err and "without --dynamic" in err
    assert not out.exists()  # a model that disagrees with its checkpoint is not left behind


@pytest.mark.parametrize("script", ["eval", "predict", "export"])
def test_truncated_checkpoint_is_one_clear_error(trained, tmp_path, capsys, script) -> None:
    root, ckpt = trained
    data = ckpt.read_bytes()
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(data[: len(data) // 2])
    argv = {
        "eval": ["--data-root", str(root), "--num-workers", "0"],
        "predict": ["--input", str(root / "val"), "--output", str(tmp_path / "out")],
        "export": ["--format", "onnx", "--output", str(tmp_path / "m.onnx")],
    }[script]
    main = {"eval": eval_script.main, "predict": predict.main, "export": export_script.main}[script]
    assert run_entry_point(lambda: main(["--ckpt", str(broken), *argv])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert str(broken) in err and "cannot be read" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.onnx").exists()
