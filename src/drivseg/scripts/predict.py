"""Segment images, folders of images or videos with a checkpoint, an ensemble or an exported ONNX file.

    python predict.py --ckpt best.ckpt --input street.png --output out/
    python predict.py --ckpt a.ckpt --ckpt b.ckpt --tta flip --input frames/ --output out/
    python predict.py --backend onnxruntime --onnx model.onnx --input drive.mp4 --output out/
    python predict.py --ckpt best.ckpt --format labelids --input leftImg8bit/test --output results/

model -> inputs -> probabilities (TTA / sliding window) -> class ids -> for every image, by ``--format``:

- ``palette`` (default): ``<stem>_mask.png`` (palette PNG: pixel values are class ids, colours the
  dataset's palette) and ``<stem>_overlay.png`` (colours blended over the image); for a video
  ``<stem>_overlay.mp4``.
- ``trainids``: ``<stem>_trainIds.png``, a plain 8-bit single-channel map of class (train) ids.
- ``labelids``: what the Cityscapes / KITTI servers and cityscapesScripts read: 8-bit Cityscapes
  label ids named ``<city>_<seq>_<frame>_labelIds.png`` (Cityscapes) or like the input
  (KITTI ``000000_10.png``), nothing else in the folder, ready to zip (``drivseg.submission``).

A folder is searched recursively; its subfolders (Cityscapes cities) are mirrored under ``--output``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional


import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from drivseg.data.label_spec import LabelSpec, identity_spec
from drivseg.data.source import IMAGE_EXTENSIONS, read_rgb_image
from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError, DataError
from drivseg.export import OnnxRunner, read_onnx_metadata
from drivseg.masks import save_index_mask
from drivseg.module import class_ids
from drivseg.inference import (
    ModelMember,
    add_inference_flags,
    ensemble_from_checkpoints,
    parse_weights,
    pick_device,
    predict_probs,
    settings_from_flags,
)
from drivseg.submission import (
    PREDICTION_FORMATS,
    require_label_ids,
    save_single_channel,
    submission_name,
    to_label_ids,
    trainids_name,
)
from drivseg.video import VideoReader, VideoWriter, is_video


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="predict.py", description=__doc__.splitlines()[0])
    add_inference_flags(p, ckpt_required=False)
    p.add_argument("--input", type=Path, required=True, help="an image, a folder of images or a video")
    p.add_argument("--output", type=Path, required=True, help="folder for masks, overlays and videos")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch", help="default: torch")
    p.add_argument("--format", choices=PREDICTION_FORMATS, default="palette",
                   help="palette (default: palette PNG + overlay) | trainids (plain class ids) | "
                        "labelids (Cityscapes label ids named for the Cityscapes / KITTI benchmarks)")
    p.add_argument("--onnx", type=Path, help="ONNX file from export.py (--backend onnxruntime)")
    p.add_argument("--batch-size", type=int, default=4, help="images or frames per forward pass (default: 4)")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours (default: 0.5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    args = p.parse_args(argv)
    if args.backend == "torch" and not args.ckpt:
        raise ConfigError("--backend torch needs --ckpt PATH (or use --backend onnxruntime --onnx FILE)")
    if args.backend == "onnxruntime" and (args.onnx is None or args.ckpt):
        raise ConfigError("--backend onnxruntime runs --onnx FILE alone: give --onnx and no --ckpt")
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha {args.alpha}: expected a value between 0 and 1")
    if args.format != "palette" and is_video(args.input):
        raise ConfigError(f"--format {args.format} writes one PNG per image; for a video use --format "
                          "palette (an overlaid video), or extract its frames to a folder first")
    return args


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, LabelSpec]:
    """The probability function and the classes/palette it predicts."""
    if args.backend == "onnxruntime":
        meta = read_onnx_metadata(args.onnx)
        if "class_names" not in meta:
            raise ConfigError(f"--onnx {args.onnx} has no class metadata; export it with export.py")
        model = ModelMember(OnnxRunner(args.onnx), meta["mean"], meta["std"], meta.get("image_scale", 1.0))
        names, palette = meta["class_names"], meta["palette"]
    else:
        model, cfg = ensemble_from_checkpoints(args.ckpt, parse_weights(args.weights, len(args.ckpt)))
        names, palette = cfg["class_names"], cfg["palette"]
    spec = identity_spec("model", tuple(names), tuple(tuple(int(v) for v in c) for c in palette))
    return model.eval(), spec


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = settings_from_flags(args)
    device = pick_device(args.device)
    model, spec = load_model(args)
    if args.format == "labelids":
        require_label_ids(spec.class_names, str(args.onnx if args.backend == "onnxruntime" else args.ckpt[0]))
    model.to(device)
    args.output.mkdir(parents=True, exist_ok=True)

    def segment(images: list[np.ndarray]) -> list[np.ndarray]:
        """RGB uint8 images of one size -> class id maps (H, W) uint8."""
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255).to(device)
        return list(class_ids(predict_probs(model, batch, settings)).byte().cpu().numpy())

    if is_video(args.input):
        suffix = ".avi" if args.input.suffix.lower() == ".avi" else ".mp4"
        out = args.output / f"{args.input.stem}_overlay{suffix}"
        with VideoReader(args.input) as reader, VideoWriter(out, reader.fps) as writer:
            frames = tqdm(reader, total=reader.frame_count, desc="frames", disable=args.no_progress)
            for chunk in batched(frames, args.batch_size):
                for frame, mask in zip(chunk, segment(chunk)):
                    writer.write(blend(frame, spec.colorize(mask), args.alpha))
        if writer.frames == 0:
            raise DataError(f"video {args.input} has no readable frames")
        print(f"Wrote {out} ({writer.frames} frames)")
        return 0

    paths = input_images(args.input, args.output)
    targets = output_paths(paths, args.input, args.output, args.format)
    for chunk in batched(tqdm(paths, desc="images", disable=args.no_progress), args.batch_size):
        images = [read_rgb_image(p) for p in chunk]
        masks: list = [None] * len(images)
        for size in {im.shape for im in images}:  # one forward pass per image size in the chunk
            idx = [i for i, im in enumerate(images) if im.shape == size]
            for i, mask in zip(idx, segment([images[i] for i in idx])):
                masks[i] = mask
        for path, image, mask in zip(chunk, images, masks):
            target = targets[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            if args.format == "labelids":
                save_single_channel(to_label_ids(mask), target)
            elif args.format == "trainids":
                save_single_channel(mask, target)
            else:
                save_index_mask(mask, spec, target)
                overlay = blend(image, spec.colorize(mask), args.alpha)
                Image.fromarray(overlay).save(target.with_name(f"{path.stem}_overlay.png"))
    what = {"palette": "masks and overlays", "trainids": "train id masks", "labelids": "label id masks"}
    print(f"Wrote {what[args.format]} of {len(paths)} image(s) to {args.output}")
    return 0


def input_images(path: Path, output: Optional[Path] = None) -> list[Path]:
    """The image itself, or the images anywhere inside a folder (not those under ``output``)."""
    if path.is_dir():
        skip = output.resolve() if output is not None else None
        images = sorted(
            p for p in path.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            and not (skip is not None and skip in p.resolve().parents)  # our own earlier outputs
        )
        if not images:
            raise DataError(f"--input {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return images
    if not path.is_file():
        raise DataError(f"--input {path} does not exist")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        kinds = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"--input {path}: expected an image ({kinds}), a folder of images or a video")
    return [path]


def output_paths(paths: list[Path], input_path: Path, output: Path, fmt: str) -> dict[Path, Path]:
    """Where each image's mask goes: its subfolder of ``--input`` mirrored under ``output``.

    Two images writing the same file (``a.png`` and ``a.jpg``, or two Cityscapes files of one frame)
    are an error before anything is written: the benchmark servers need one prediction per frame.
    """
    name = {"palette": lambda p: f"{p.stem}_mask.png", "trainids": trainids_name,
            "labelids": submission_name}[fmt]
    targets: dict[Path, Path] = {}
    seen: dict[Path, Path] = {}
    for path in paths:
        folder = path.parent.relative_to(input_path) if input_path.is_dir() else Path()
        target = output / folder / name(path)
        if target in seen:
            raise DataError(f"--input {seen[target]} and {path} would both be written to {target}; "
                            "rename one of them or predict them into different --output folders")
        seen[target] = path
        targets[path] = target
    return targets


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == max(1, size):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def blend(image: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colours``, rounded to uint8."""
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def run() -> None:
    """Console command ``drivseg-predict``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.predict
    run()
