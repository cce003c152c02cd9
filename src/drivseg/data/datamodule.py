"""``SegmentationDataModule``: any registered ``DatasetSource`` as train / val / test loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from drivseg.data.dataset import SegmentationDataset, check_sizes, pad_collate
from drivseg.data.label_spec import IGNORE_INDEX, LabelSpec
from drivseg.data.source import DatasetSource, Pair
from drivseg.data.transforms import eval_transform, train_transform
from drivseg.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_root(source: DatasetSource, data_root: Optional[str]) -> Path:
    """The dataset folder: ``--data-root`` or the source's default; missing -> what to download."""
    if data_root:
        root = Path(data_root).expanduser()
    elif source.default_root is not None:
        root = source.default_root()
    else:
        raise ConfigError(f"--data {source.name} needs --data-root DIR. {source.download_hint}")
    if not root.is_dir() and source.prepare is None:
        raise DataError(f"data root {root} does not exist (--data {source.name}). {source.download_hint}")
    return root


class SegmentationDataModule(pl.LightningDataModule):
    """Loaders for one dataset. Splits in ``source.optional_splits`` may be absent (no test stage)."""

    def __init__(
        self,
        source: DatasetSource,
        root: Path,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 2,
        crop_size: Optional[Sequence[int]] = None,
        image_scale: float = 1.0,
        scale_range: Sequence[float] = (0.75, 1.5),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.source = source
        self.root = Path(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.crop_size = tuple(crop_size) if crop_size else None
        self.image_scale = image_scale
        self.scale_range = tuple(scale_range)
        self.mean, self.std = tuple(mean), tuple(std)
        self.pairs: dict[str, list[Pair]] = {}
        self._pixel_stats: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    @property
    def label_spec(self) -> LabelSpec:
        return self.source.label_spec

    @property
    def num_classes(self) -> int:
        return self.label_spec.num_classes

    def prepare_data(self) -> None:
        if self.source.prepare is not None:
            self.source.prepare(self.root)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.pairs:
            return
        for split in self.source.splits:
            if split in self.source.optional_splits and not self.source.has_split(self.root, split):
                continue
            pairs = self.source.find_pairs(self.root, split)
            if not pairs:
                raise DataError(f"split {split!r} of {self.root} is empty (--data {self.source.name})")
            check_sizes(pairs)
            self.pairs[split] = pairs

    @property
    def has_test(self) -> bool:
        return "test" in self.pairs

    def dataset(self, split: str, train: bool = False) -> SegmentationDataset:
        if split not in self.pairs:
            raise DataError(f"{self.root} has no {split!r} split (--data {self.source.name})")
        if train:
            tf = train_transform(self.mean, self.std, self.crop_size, self.image_scale, self.scale_range)
        else:
            tf = eval_transform(self.mean, self.std, self.image_scale)
        return SegmentationDataset(self.pairs[split], self.source, tf)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.dataset(split, train)
        sampler = None
        if not train and dist.is_available() and dist.is_initialized():
            # Lightning's default DistributedSampler repeats samples to even out ranks, which would
            # count some images twice in val/test metrics; this one never repeats.
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(ds, shuffle=False)
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            sampler=sampler,
            drop_last=train and len(ds) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=pad_collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def class_pixel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per class over the train split: (pixels of the class, total pixels of images containing it)."""
        if self._pixel_stats is None:
            ds = SegmentationDataset(self.pairs["train"], self.source)
            c = self.num_classes
            pixels = np.zeros(c, dtype=np.int64)
            present = np.zeros(c, dtype=np.int64)
            for i in range(len(ds)):
                _, mask = ds.load(i)
                counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=c)[:c]
                pixels += counts
                present += (counts > 0) * mask.size
            self._pixel_stats = torch.from_numpy(pixels), torch.from_numpy(present)
        return self._pixel_stats
