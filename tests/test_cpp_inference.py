"""cpp/: the libtorch program builds with CMake and segments exactly like predict.py, pixel for pixel.

Skipped when no C++ compiler or CMake is on PATH. The build goes to a pytest tmp folder; it takes
30 to 45 s on 2 cores (one translation unit includes the TorchScript headers).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import export as export_script
import predict

from tests.conftest import REPO, train_tiny_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def missing_tools() -> list[str]:
    missing = [] if shutil.which("cmake") else ["cmake"]
    if not (shutil.which("c++") or shutil.which("g++")):
        missing.append("a C++ compiler (g++)")
    return missing


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    if missing_tools():
        pytest.skip(f"the C++ inference example needs {' and '.join(missing_tools())} on PATH")
    build = tmp_path_factory.mktemp("cpp_build")
    start = time.perf_counter()
    steps = [
        ["cmake", "-S", str(REPO / "cpp"), "-B", str(build),
         f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}"],
        ["cmake", "--build", str(build), "-j", "2"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    print(f"cpp/ configured and built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return build / "drivseg_segment"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("trained"))


def export_torchscript(ckpt: Path, out: Path) -> Path:
    argv = ["--ckpt", str(ckpt), "--format", "torchscript", "--output", str(out),
            "--height", "48", "--width", "64"]
    assert export_script.main(argv) == 0
    return out


def run_cpp(binary: Path, model: Path, image: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), str(model), str(image), str(out), "--threads", "1"],
                          capture_output=True, text=True, timeout=120)


def assert_cpp_equals_predict(binary: Path, ckpt: Path, images: list[Path], tmp_path: Path) -> None:
    """The C++ mask of every image equals predict.py's, and both carry the checkpoint's palette."""
    model = export_torchscript(ckpt, tmp_path / "model.pt")
    folder = tmp_path / "inputs"
    folder.mkdir(exist_ok=True)
    for image in images:
        shutil.copy(image, folder / image.name)
    assert predict.main(["--ckpt", str(ckpt), "--input", str(folder), "--output", str(tmp_path / "py"),
                         "--no-progress"]) == 0
    config = torch.load(ckpt, map_location="cpu", weights_only=True)["hyper_parameters"]["model_config"]
    palette = config["palette"]
    for image in images:
        out = tmp_path / f"{image.stem}_cpp.png"
        done = run_cpp(binary, model, folder / image.name, out)
        assert done.returncode == 0, done.stderr
        with Image.open(out) as cpp, Image.open(tmp_path / "py" / f"{image.stem}_mask.png") as py:
            assert cpp.mode == "P" and cpp.size == py.size
            cpp_mask, py_mask = np.array(cpp), np.array(py)
            assert cpp.getpalette()[: 3 * len(palette)] == [v for colour in palette for v in colour]
        assert len(np.unique(py_mask)) > 1  # a mask with several classes, not a trivial match
        assert np.array_equal(cpp_mask, py_mask), f"{image.name}: {(cpp_mask != py_mask).sum()} pixels differ"


def test_cpp_mask_equals_predict_py(binary, trained, tmp_path) -> None:
    root, ckpt = trained
    assert_cpp_equals_predict(binary, ckpt, sorted((root / "val").iterdir()), tmp_path)


def test_cpp_applies_the_input_scale_stored_in_the_model(binary, trained, tmp_path) -> None:
    # image_scale 0.5: the image is resized before the network and the probabilities after it
    root, ckpt = trained
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["hyper_parameters"]["model_config"]["image_scale"] = 0.5
    half = tmp_path / "half.ckpt"
    torch.save(state, half)
    assert_cpp_equals_predict(binary, half, sorted((root / "val").iterdir())[:2], tmp_path)


def test_cpp_reads_png_colour_types_like_pil(binary, trained, tmp_path) -> None:
    # RGBA, greyscale and palette PNGs (a 16-colour palette is stored with 4 bits per pixel)
    root, ckpt = trained
    rgb = Image.open(sorted((root / "val").iterdir())[0]).convert("RGB")
    variants = {"rgba": rgb.convert("RGBA"), "grey": rgb.convert("L"), "palette16": rgb.quantize(colors=16)}
    images = []
    for name, image in variants.items():
        image.save(tmp_path / f"{name}.png")
        images.append(tmp_path / f"{name}.png")
    header = (tmp_path / "palette16.png").read_bytes()[16:26]  # IHDR: width, height, bit depth, colour type
    assert (header[8], header[9]) == (4, 3)  # 4-bit palette: the sub-byte unpacking is exercised
    assert_cpp_equals_predict(binary, ckpt, images, tmp_path)


def test_cpp_errors_name_the_file_and_the_fix(binary, trained, tmp_path) -> None:
    root, ckpt = trained
    # a TorchScript file that export.py did not write: no classes, palette or normalisation inside
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 2, 1).eval(), torch.zeros(1, 3, 4, 4)), str(plain))
    done = run_cpp(binary, plain, sorted((root / "val").iterdir())[0], tmp_path / "out.png")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and str(plain) in done.stderr and "export.py" in done.stderr
    not_png = tmp_path / "photo.png"
    not_png.write_bytes(b"\xff\xd8\xff\xe0 a JPEG renamed")
    done = run_cpp(binary, export_torchscript(ckpt, tmp_path / "model.pt"), not_png, tmp_path / "out.png")
    assert done.returncode == 1 and str(not_png) in done.stderr and "not a PNG" in done.stderr
    assert subprocess.run([str(binary)], capture_output=True, text=True).returncode == 2  # usage
