"""Ship a trained network as ONNX or TorchScript, with its classes and normalisation inside the file.

The exported graph maps normalised images (B, 3, H, W) float32, ``(pixel / 255 - mean) / std``, to
logits (B, C, H, W). Class names, palette, mean, std and the input scale travel with the model: as
ONNX ``metadata_props`` (one JSON string per key) or as the TorchScript extra file ``drivseg.json``.

Dynamic shapes (``--dynamic``): SMP networks pad the input to their stride with Python arithmetic
(``PadToMultiple``), which tracing would freeze at the export size; ``ExportableNet`` redoes that
padding with tensor operations so batch, height and width stay free. What still cannot be exported
with dynamic sizes (checked for every registered architecture):

- ``fast_scnn``, ``pspnet``, ``scratch_pspnet``, ``upernet``: pyramid pooling to fixed grids
  (adaptive average pooling, bins 1, 2, 3, 6). The ONNX exporter turns it into a fixed-kernel
  ``AveragePool`` that needs the input size at export time, and even then only when every pooled
  map divides by the bins (multiples of 192 such as 384x576 work). TorchScript keeps any size.
- ``scratch_unet``: odd feature-map sizes are padded by a Python ``if``, which tracing (ONNX and
  TorchScript alike) freezes: exported models only work at sizes that are multiples of 16.
- ``dpt``: antialiased bicubic resizing (position embeddings) has no ONNX operator (opset 17),
  at any size; use TorchScript.

Every export is checked against PyTorch (``--dynamic``: at a second, odd size and batch too).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.errors import ConfigError
from drivseg.models.padding import PadToMultiple
from drivseg.module import split_outputs

FORMATS = ("onnx", "torchscript")
PARITY_TOLERANCE = 1e-4  # max |logit difference| accepted between PyTorch and the exported model (fp32)
TORCHSCRIPT_METADATA = "drivseg.json"
ONNX_OPSET = 17


class ExportableNet(nn.Module):
    """Main logits only; with ``dynamic_padding`` the stride padding is redone as traceable tensor ops.

    Without it the network's own padding is traced at the export size, which keeps every shape a
    constant: the ONNX exporter needs that for adaptive pooling.
    """

    def __init__(self, net: nn.Module, dynamic_padding: bool = True) -> None:
        super().__init__()
        self.net = net.eval()
        self.multiple = stride_multiple(net) if dynamic_padding else 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2], images.shape[-1]
        if self.multiple > 1:
            # under tracing h and w are tensors: the padding follows the input size at run time,
            # and the network's own PadToMultiple then sees a multiple and does nothing
            pad_h = (self.multiple - h % self.multiple) % self.multiple
            pad_w = (self.multiple - w % self.multiple) % self.multiple
            images = F.pad(images, (0, pad_w, 0, pad_h))
        logits = split_outputs(self.net(images))[0]
        return logits[..., :h, :w]


def stride_multiple(net: nn.Module) -> int:
    """The size multiple a network pads its input to (1 when it takes any size)."""
    return max([m.multiple for m in net.modules() if isinstance(m, PadToMultiple)], default=1)


def model_metadata(model_config: dict) -> dict:
    """What a user of the exported file needs: classes, palette, normalisation, input scale."""
    return {
        "arch": model_config["arch"],
        "encoder": model_config.get("encoder"),
        "data": model_config.get("data"),
        "class_names": list(model_config["class_names"]),
        "palette": [list(c) for c in model_config["palette"]],
        "mean": list(model_config["mean"]),
        "std": list(model_config["std"]),
        "image_scale": model_config.get("image_scale", 1.0),
        "input": "float32 RGB (B, 3, H, W) = (pixel / 255 - mean) / std",
        "output": "float32 logits (B, C, H, W); argmax over C gives the class index",
    }


def export_onnx(
    net: nn.Module, path: Path, example: torch.Tensor, metadata: dict, dynamic: bool, arch: str = ""
) -> None:
    """Trace ``net`` on ``example`` (1, 3, H, W) into ``path``; metadata values stored as JSON strings."""
    import onnx

    free = {0: "batch", 2: "height", 3: "width"}
    try:
        # dynamo=False: the TorchScript-based exporter, which needs no onnxscript
        with native_output_discarded():
            torch.onnx.export(
                ExportableNet(net, dynamic_padding=dynamic).eval(),
                (example,),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": free, "logits": free} if dynamic else None,
            )
    except Exception as err:
        raise ConfigError(onnx_failure_message(arch, err, dynamic, example.shape[-2:])) from None
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {key: json.dumps(value) for key, value in metadata.items()})
    onnx.save(model, str(path))


@contextlib.contextmanager
def native_output_discarded():
    """Drop what native code prints to stdout/stderr meanwhile: on failure the ONNX exporter dumps
    the whole traced graph (thousands of lines) before raising; the error itself is reported."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def onnx_failure_message(arch: str, err: Exception, dynamic: bool, size: Sequence[int]) -> str:
    """Why the ONNX exporter failed, and what to do instead."""
    text = str(err)
    if "adaptive_avg_pool2d" in text:
        why = (
            f"{arch or 'this network'} pools to fixed grids (adaptive average pooling) and ONNX can only "
            "express that as a fixed-kernel AveragePool"
        )
        if dynamic:
            return (
                f"{why}, so it cannot be exported with --dynamic; drop --dynamic and pick the "
                "--height/--width you will run at (multiples of 192 such as 384x576 work), "
                "or use --format torchscript (any size)"
            )
        return (
            f"{why} and at {size[0]}x{size[1]} the pooled feature maps do not divide by every bin; "
            "use --height/--width multiples of 192 (e.g. 384x576) or --format torchscript"
        )
    first_line = text.strip().splitlines()[0][:300] if text.strip() else ""
    return f"ONNX export of {arch or 'the network'} failed ({type(err).__name__}: {first_line})"


def export_torchscript(net: nn.Module, path: Path, example: torch.Tensor, metadata: dict) -> None:
    """Trace ``net`` on ``example`` into ``path`` with the metadata as the extra file ``drivseg.json``."""
    with torch.no_grad():
        traced = torch.jit.trace(ExportableNet(net).eval(), example, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata)})


def read_onnx_metadata(path: Path) -> dict:
    """The metadata written by ``export_onnx`` (JSON values decoded)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


def read_torchscript_metadata(path: Path) -> dict:
    """The metadata written by ``export_torchscript``."""
    extra = {TORCHSCRIPT_METADATA: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[TORCHSCRIPT_METADATA] or "{}")


class OnnxRunner:
    """An ONNX file run by ONNX Runtime as a function normalised images -> logits (torch tensors).

    A model exported at a fixed size gets its input resized to that size (bilinear) and its logits
    resized back, one image at a time when the batch size is fixed too.
    """

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise ConfigError(f"--onnx {path} does not exist; export one with export.py --format onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # idle threads would otherwise spin for a while after each run, starving PyTorch and other
        # processes on a shared CPU (and skewing latency comparisons)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # runtime errors reach the caller as exceptions; ONNX Runtime's own log would print them twice
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise ConfigError(
                f"--onnx {path} cannot be loaded by ONNX Runtime ({str(err).strip().splitlines()[0]})"
            ) from None
        shape = self.session.get_inputs()[0].shape  # [batch, 3, height, width]; str or None when dynamic
        self.input_name = self.session.get_inputs()[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.fixed_size = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) else None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        x = images.float()
        if self.fixed_size is not None and tuple(size) != self.fixed_size:
            x = F.interpolate(x, size=self.fixed_size, mode="bilinear", align_corners=False)
        chunks = x.split(self.fixed_batch) if self.fixed_batch else [x]
        outs = [self.session.run(None, {self.input_name: c.detach().cpu().numpy()})[0] for c in chunks]
        logits = torch.from_numpy(np.concatenate(outs)).to(images.device)
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits


def load_exported(path: Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported model as a function normalised images -> logits."""
    if fmt == "onnx":
        return OnnxRunner(path)
    return torch.jit.load(str(path), map_location="cpu").eval()


@torch.no_grad()
def max_logit_difference(reference: nn.Module, exported: Callable, images: torch.Tensor) -> float:
    """max |eager PyTorch logits - exported logits| on ``images`` (fp32)."""
    expected = split_outputs(reference.eval()(images))[0]
    actual = exported(images)
    if tuple(actual.shape) != tuple(expected.shape):
        raise ConfigError(f"exported model returned {tuple(actual.shape)} for input {tuple(images.shape)}, "
                          f"PyTorch {tuple(expected.shape)}")
    return float((actual.float() - expected.float()).abs().max())


def parity_sizes(height: int, width: int, dynamic: bool) -> list[tuple[int, int, int]]:
    """(batch, H, W) inputs to check: the export size, plus another batch and size when dynamic."""
    sizes = [(1, height, width)]
    if dynamic:
        # odd sizes on purpose: they exercise the stride padding that tracing would otherwise freeze
        sizes.append((2, height + 37, width + 21))
    return sizes


def median_latencies(
    fns: Sequence[Callable[[torch.Tensor], torch.Tensor]], images: torch.Tensor, repeats: int
) -> list[float]:
    """Median seconds of each ``fn(images)`` over ``repeats`` runs, after one warm-up run each.

    The functions take turns within every repeat, so load from other processes on a shared CPU
    hits all of them alike and the ratio of medians stays meaningful.
    """
    times: list[list[float]] = [[] for _ in fns]
    with torch.no_grad():
        for fn in fns:
            fn(images)
        for _ in range(repeats):
            for fn, spent in zip(fns, times):
                start = time.perf_counter()
                fn(images)
                spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]
