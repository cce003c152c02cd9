"""The synthetic dataset on disk: SegNet layout in a cache folder, written atomically, and its source."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from drivseg.data.camvid import CAMVID_SPEC, find_segnet_pairs
from drivseg.data.source import DatasetSource
from drivseg.data.synthetic.layout import MAX_FRAMES_PER_SEQUENCE
from drivseg.data.synthetic.render import MIN_SIZE, render_scene
from drivseg.data.synthetic.style import sample_style
from drivseg.errors import ConfigError, DataError

GENERATOR_VERSION = 1
DEFAULT_SEED = 0
DEFAULT_SIZE = (144, 192)  # (H, W)
DEFAULT_COUNTS: Mapping[str, int] = MappingProxyType({"train": 240, "val": 60, "test": 60})
DEFAULT_FRAMES_PER_SEQUENCE = 10
MANIFEST = "dataset.json"


def _params(seed: int, size: Sequence[int], counts: Mapping[str, int], frames_per_sequence: int) -> dict:
    return {
        "generator": "drivseg.synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "counts": {k: int(v) for k, v in counts.items()},
        "frames_per_sequence": int(frames_per_sequence),
    }


def _check_params(
    seed: int, size: Sequence[int], counts: Mapping[str, int], frames_per_sequence: int
) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic seed {seed!r}: expected an integer >= 0")
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise ConfigError(f"synthetic size {tuple(size)}: expected (height, width), each >= {MIN_SIZE}")
    bad = {k: v for k, v in counts.items() if not (isinstance(v, int) and v >= 0 and str(k).isidentifier())}
    if bad or not any(counts.values()):
        raise ConfigError(f"synthetic counts {dict(counts)}: expected split names -> image counts >= 0, e.g. "
                          f"{dict(DEFAULT_COUNTS)}")  # fmt: skip
    if not 1 <= frames_per_sequence <= MAX_FRAMES_PER_SEQUENCE:
        raise ConfigError(
            f"synthetic frames_per_sequence={frames_per_sequence}: expected 1..{MAX_FRAMES_PER_SEQUENCE}"
        )


def default_synthetic_root(
    seed: int = DEFAULT_SEED,
    size: Sequence[int] = DEFAULT_SIZE,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    frames_per_sequence: int = DEFAULT_FRAMES_PER_SEQUENCE,
) -> Path:
    """Cache folder for a generated dataset: ``$DRIVSEG_CACHE`` (or ``~/.cache/drivseg``) /
    ``synthetic-v<version>-<hash of the parameters>``, so other parameters never collide."""
    cache = os.environ.get("DRIVSEG_CACHE") or str(Path.home() / ".cache" / "drivseg")
    key = json.dumps(_params(seed, size, counts, frames_per_sequence), sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return Path(cache).expanduser() / f"synthetic-v{GENERATOR_VERSION}-{digest}"


def write_synthetic_dataset(
    root: Path,
    seed: int = DEFAULT_SEED,
    size: Sequence[int] = DEFAULT_SIZE,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    frames_per_sequence: int = DEFAULT_FRAMES_PER_SEQUENCE,
) -> Path:
    """Write the SegNet layout (``train/ trainannot/ ...``) of rendered scenes under ``root``.

    Deterministic in ``seed``; splits use disjoint sequences. Files are written into a hidden
    sibling folder that replaces ``root`` only when complete, with ``dataset.json`` recording the
    parameters. A complete dataset with the same parameters is left as it is.
    """
    root = Path(root).expanduser()
    _check_params(seed, size, counts, frames_per_sequence)
    params = _params(seed, size, counts, frames_per_sequence)
    if _is_complete(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        _write_all(tmp, seed, (int(size[0]), int(size[1])), counts, frames_per_sequence)
        (tmp / MANIFEST).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            os.replace(tmp, root)  # atomic; only succeeds onto a missing or empty folder
        except OSError:
            if _is_complete(root, params):  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def prepare_synthetic(root: Path) -> None:
    """``DatasetSource.prepare``: generate the default dataset at ``root`` unless it is there."""
    write_synthetic_dataset(root)


def _is_complete(root: Path, params: dict) -> bool:
    """True for a finished dataset with these parameters; False for a missing or empty folder."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise DataError(f"synthetic data root {root} is a file; expected a folder. Pass another --data-root")
    manifest = root / MANIFEST
    if not manifest.is_file():
        if any(root.iterdir()):
            raise DataError(
                f"{root} is not empty and has no {MANIFEST}, so it is not a generated synthetic dataset; "
                "pass an empty or missing folder as --data-root"
            )
        return False
    try:
        found = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{manifest} cannot be read ({err}); delete {root} to regenerate it") from err
    if found != params:
        raise DataError(
            f"{root} holds a synthetic dataset made with {found}, but {params} was asked for; "
            "delete the folder or pass another --data-root"
        )
    for split, count in params["counts"].items():
        for folder in (root / split, root / f"{split}annot"):
            n = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
            if n != count:
                raise DataError(f"{folder} holds {n} PNGs, expected {count}; delete {root} to regenerate it")
    return True


def _write_all(out: Path, seed: int, size: tuple[int, int], counts: Mapping[str, int], fps: int) -> None:

    sequence = 0
    for split, count in counts.items():
        (out / split).mkdir()
        (out / f"{split}annot").mkdir()
        for first in range(0, count, fps):
            frames = min(fps, count - first)
            # fixed-length spawn keys: one stream per sequence (slot 0) and per frame (slots 1..)
            style = sample_style(_stream(seed, sequence, 0), fps)
            for frame in range(frames):
                rng = _stream(seed, sequence, frame + 1)
                image, mask = render_scene(rng, size[0], size[1], style, frame)
                name = f"synth{sequence:02d}_{frame:06d}.png"
                _save_png(image, out / split / name)
                _save_png(mask, out / f"{split}annot" / name)
            sequence += 1


def _stream(seed: int, sequence: int, slot: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(sequence, slot)))


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=6)  # uint8 (H, W, 3) -> RGB, (H, W) -> L


SYNTHETIC = DatasetSource(
    name="synthetic",
    label_spec=CAMVID_SPEC,
    find_pairs=find_segnet_pairs,
    default_root=default_synthetic_root,
    prepare=prepare_synthetic,
    download_hint="generated locally on first use",
)
