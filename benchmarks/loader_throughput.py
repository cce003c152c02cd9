"""Loader throughput: images/s of ``SegmentationDataset`` + ``DataLoader`` at each dataset's real
frame size and file format, with 0 and 2 worker processes.

    .venv/bin/python benchmarks/loader_throughput.py
    .venv/bin/python benchmarks/loader_throughput.py --datasets cityscapes camvid --images 8 --repeats 5
    .venv/bin/python benchmarks/loader_throughput.py --transform train --crop 512 1024

For every dataset, ``--images`` frames are written into a temporary folder in the dataset's
official layout and encoding (Cityscapes 2048x1024 PNG + labelIds PNG, KITTI 1242x375 PNG,
BDD100K 1280x720 JPEG, Mapillary 1920x1080 JPEG + palette PNG, CamVid 480x360 PNG, Lyft-CARLA
800x600 PNG + tag-in-red PNG) and listed through the dataset's own ``find_pairs``. The test
fixture writers save the files; the pixels are street-like (smooth regions, mild sensor noise)
rather than the fixtures' uniform noise, because noise does not compress and would make every
file, and its decoding, several times larger than the real ones. The table gives the mean image
file size so it can be compared with real files. When the real CamVid is found
(``DRIVSEG_CAMVID_ROOT`` or ``../shared/data/camvid``), its val frames are measured as well.

Each setting runs one warm-up pass (starts the workers, fills the page cache) and ``--repeats``
timed passes over the frames; the table shows the median images/s. The transform is the
validation one (normalise, full resolution) unless ``--transform`` says otherwise. Results depend
on the CPU and on whatever else runs on it: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from drivseg.data import DATASETS  # noqa: E402
from drivseg.data.cityscapes import CITYSCAPES19_SPEC  # noqa: E402
from drivseg.data.dataset import SegmentationDataset, pad_collate  # noqa: E402
from drivseg.data.datamodule import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from drivseg.data.mapillary import LABELS as MAPILLARY_LABELS  # noqa: E402
from drivseg.data.source import DatasetSource, Pair  # noqa: E402
from drivseg.data.transforms import eval_transform, train_transform  # noqa: E402
from tests.data.fixtures_cityscapes import write_png  # noqa: E402
from tests.data.fixtures_misc import write_index_png, write_rgb_png  # noqa: E402

CITYSCAPES_LABEL_IDS = sorted(CITYSCAPES19_SPEC.raw_to_train)  # the 19 evaluated label ids
JPEG_QUALITY = 90


def street_scene(height: int, width: int, seed: int, values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A street-like RGB frame (H, W, 3) and its label map (H, W) with raw values from ``values``.

    Sky, facades and road bands plus random boxes; each region has a colour, a vertical shading
    gradient and Gaussian noise (sigma 4), so PNG/JPEG sizes are close to camera frames.
    """
    rng = np.random.default_rng(seed)
    regions = np.zeros((height, width), dtype=np.int64)
    regions[int(height * 0.35) : int(height * 0.6)] = 1
    regions[int(height * 0.6) :] = 2
    for index in range(3, 23):
        h, w = rng.integers(height // 20, height // 3), rng.integers(width // 30, width // 5)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        regions[y : y + h, x : x + w] = index
    colours = rng.integers(30, 225, (23, 3)).astype(np.float32)
    shade = np.linspace(-25, 25, height, dtype=np.float32)[:, None, None]
    image = colours[regions] + shade + rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    labels = np.asarray(values, dtype=np.uint8)[regions % len(values)]
    return np.clip(image, 0, 255).astype(np.uint8), labels


def save_photo(path: Path, rgb: np.ndarray) -> None:
    """PNG via the fixture writer; JPEG at camera-like quality (the writer uses PIL's default 75)."""
    if path.suffix == ".png":
        write_png(path, rgb)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(path, quality=JPEG_QUALITY)


# ---------------------------------------------------------------- one writer per layout


def write_cityscapes(root: Path, i: int) -> None:
    image, ids = street_scene(1024, 2048, i, CITYSCAPES_LABEL_IDS)
    name = f"frankfurt_000000_{i:06d}"
    save_photo(root / "leftImg8bit" / "val" / "frankfurt" / f"{name}_leftImg8bit.png", image)
    write_png(root / "gtFine" / "val" / "frankfurt" / f"{name}_gtFine_labelIds.png", ids)


def write_kitti(root: Path, i: int) -> None:
    image, ids = street_scene(375, 1242, i, CITYSCAPES_LABEL_IDS)
    save_photo(root / "training" / "image_2" / f"{i:06d}_10.png", image)
    write_png(root / "training" / "semantic" / f"{i:06d}_10.png", ids)


def write_bdd100k(root: Path, i: int) -> None:
    image, ids = street_scene(720, 1280, i, list(range(19)))
    name = f"{i:08x}-{i * 7919:08x}"
    save_photo(root / "images" / "10k" / "val" / f"{name}.jpg", image)
    write_png(root / "labels" / "sem_seg" / "masks" / "val" / f"{name}.png", ids)


def write_mapillary(root: Path, i: int) -> None:
    image, ids = street_scene(1080, 1920, i, list(range(len(MAPILLARY_LABELS))))
    image_id = f"{i:022d}"
    save_photo(root / "validation" / "images" / f"{image_id}.jpg", image)
    palette = [lb.color for lb in MAPILLARY_LABELS]
    write_index_png(root / "validation" / "labels" / f"{image_id}.png", ids, palette)


def write_camvid(root: Path, i: int) -> None:
    image, ids = street_scene(360, 480, i, list(range(12)))
    save_photo(root / "val" / f"0016E5_{i:05d}.png", image)
    write_png(root / "valannot" / f"0016E5_{i:05d}.png", ids)


def write_lyft(root: Path, i: int) -> None:
    image, tags = street_scene(600, 800, i, list(range(13)))
    frame = i * 100  # one frame per block of 100 so the sequence-keeping split has several sequences
    save_photo(root / "CameraRGB" / f"{frame}.png", image)
    seg = np.zeros((*tags.shape, 3), dtype=np.uint8)
    seg[..., 0] = tags  # CARLA writes the tag into the red channel
    write_rgb_png(root / "CameraSeg" / f"{frame}.png", seg)


@dataclass(frozen=True)
class Case:
    source: str  # registry name
    size: str  # W x H as in the dataset's documentation
    write: Callable[[Path, int], None]


CASES = {
    "cityscapes": Case("cityscapes", "2048x1024", write_cityscapes),
    "kitti": Case("kitti", "1242x375", write_kitti),
    "bdd100k": Case("bdd100k", "1280x720", write_bdd100k),
    "mapillary": Case("mapillary", "1920x1080", write_mapillary),
    "camvid": Case("camvid", "480x360", write_camvid),
    "lyft_carla": Case("lyft_carla", "800x600", write_lyft),
}


# ---------------------------------------------------------------- measurement


def all_pairs(source: DatasetSource, root: Path) -> list[Pair]:
    """Pairs of every split the source can list under ``root`` (KITTI and Lyft split by hash)."""
    splits = [split for split in source.splits if source.has_split(root, split)]
    pairs = [pair for split in splits for pair in source.find_pairs(root, split)]
    if not pairs:
        source.find_pairs(root, source.splits[0])  # raises the source's own explanation
        raise RuntimeError(f"{source.name}: no split of {root} could be listed")
    return pairs


def images_per_second(dataset: SegmentationDataset, workers: int, batch_size: int, repeats: int) -> float:
    """Median images/s over ``repeats`` passes, after one untimed warm-up pass."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=pad_collate,
    )
    rates = []
    for repeat in range(repeats + 1):
        start = time.perf_counter()
        count = sum(len(batch["name"]) for batch in loader)
        if repeat:
            rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def make_transform(kind: str, crop: list[int]) -> Optional[Callable]:
    if kind == "none":
        return None  # SegmentationDataset's plain uint8 -> float tensor
    if kind == "train":
        return train_transform(IMAGENET_MEAN, IMAGENET_STD, crop)
    return eval_transform(IMAGENET_MEAN, IMAGENET_STD)


def measure_row(
    name: str, size: str, source: DatasetSource, pairs: list[Pair], args: argparse.Namespace
) -> list[str]:
    dataset = SegmentationDataset(pairs, source, make_transform(args.transform, args.crop))
    rates = [images_per_second(dataset, w, args.batch_size, args.repeats) for w in args.workers]
    kb = np.mean([p[0].stat().st_size for p in pairs]) / 1024
    image_ext, mask_ext = pairs[0][0].suffix, pairs[0][1].suffix
    speedup = f"{rates[-1] / rates[0]:.2f}x"
    rates_text = [f"{r:.1f}" for r in rates]
    return [name, size, f"{image_ext} {kb:.0f} KB", mask_ext, str(len(pairs)), *rates_text, speedup]


def real_camvid_root() -> Optional[Path]:
    root = Path(os.environ.get("DRIVSEG_CAMVID_ROOT", REPO.parent / "shared" / "data" / "camvid"))
    return root if (root / "val").is_dir() else None


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--images", type=int, default=16, help="frames written per dataset")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per setting (median reported)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers settings")
    p.add_argument("--transform", choices=("eval", "train", "none"), default="eval")
    p.add_argument("--crop", type=int, nargs=2, default=[512, 1024], help="train crop H W (train transform)")
    p.add_argument("--no-real-camvid", action="store_true", help="skip the real CamVid row")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    header = ["dataset", "W x H", "image (mean size)", "mask", "frames"]
    header += [f"{w} workers img/s" for w in args.workers] + [f"{args.workers[-1]} vs {args.workers[0]}"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="drivseg-loader-bench-") as tmp:
        for name in args.datasets:
            case, root = CASES[name], Path(tmp) / name
            for i in range(args.images):
                case.write(root, i)
            source = DATASETS[case.source]
            rows.append(measure_row(name, case.size, source, all_pairs(source, root), args))
            print(markdown(header, rows[-1:]).splitlines()[-1], flush=True)
    real = None if args.no_real_camvid else real_camvid_root()
    if real is not None:
        source = DATASETS["camvid"]
        pairs = source.find_pairs(real, "val")[: args.images]
        rows.append(measure_row("camvid (real files)", "480x360", source, pairs, args))
    print()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads, batch {args.batch_size}, transform {args.transform}, "
        f"median of {args.repeats} passes"
    )
    print()
    print(markdown(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
