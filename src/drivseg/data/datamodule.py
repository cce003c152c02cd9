"""``SegmentationDataModule``: any registered ``DatasetSource`` as train / val / test loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import albumentations as A
import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from drivseg.data.dataset import SegmentationDataset, check_sizes, pad_collate
from drivseg.data.label_spec import IGNORE_INDEX, LabelSpec
from drivseg.data.sampling import EpochShuffleSampler, ResumableLoader, loader_generator, worker_init
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


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class SegmentationDataModule(pl.LightningDataModule):
    """Loaders for one dataset. Splits in ``source.optional_splits`` may be absent (no test stage).

    Loaders yield uint8 images (the module normalises them on its device). The train order depends
    only on (seed, epoch) and every sample's augmentation on (seed, epoch, index), so a run resumed
    from a checkpoint sees exactly the batches the uninterrupted run would have
    (see ``drivseg.data.sampling``).

    Args:
        split_pairs: replaces the dataset's own splits, e.g. {"train": ..., "val": ...} of one
            cross-validation fold; other splits of the dataset (test) are still read from disk.
        augment: the augmentation pipeline after scale/crop (``--augment``); None: no augmentation.
        bad_samples: ``error`` | ``skip`` (see ``SegmentationDataset``).
    """

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
        augment: Optional[A.BaseCompose] = None,
        seed: int = 0,
        bad_samples: str = "error",
        split_pairs: Optional[dict[str, list[Pair]]] = None,
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
        self.augment = augment
        self.seed = int(seed)
        self.bad_samples = bad_samples
        self.split_pairs = dict(split_pairs or {})
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
            if split in self.split_pairs:
                pairs = list(self.split_pairs[split])
            elif split in self.source.optional_splits and not self.source.has_split(self.root, split):
                continue
            else:
                pairs = self.source.find_pairs(self.root, split)
            if not pairs:
                raise DataError(f"split {split!r} of {self.root} is empty (--data {self.source.name})")
            if self.bad_samples == "error":
                check_sizes(pairs)
            self.pairs[split] = pairs

    @property
    def has_test(self) -> bool:
        return "test" in self.pairs

    def train_pipeline(self) -> A.Compose:
        """The train transform (scale/crop + augmentation + tensors): saved with the run."""
        return train_transform(self.crop_size, self.image_scale, self.scale_range, self.augment)

    def dataset(self, split: str, train: bool = False) -> SegmentationDataset:
        if split not in self.pairs:
            raise DataError(f"{self.root} has no {split!r} split (--data {self.source.name})")
        tf = self.train_pipeline() if train else eval_transform(self.image_scale)
        return SegmentationDataset(self.pairs[split], self.source, tf, self.bad_samples)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.dataset(split, train)
        rank, world = _rank_and_world()
        workers = dict(num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                       worker_init_fn=worker_init if self.num_workers > 0 else None,
                       pin_memory=torch.cuda.is_available(), collate_fn=pad_collate)
        if train:
            drop_last = len(ds) // world > self.batch_size
            sampler = EpochShuffleSampler(len(ds), self.seed, shuffle=True, rank=rank, world_size=world)
            # Lightning creates the first iterator (and workers start prefetching) before it calls
            # set_epoch; a resumed run must already be at its epoch then, not at 0
            sampler.set_epoch(self._epoch_to_run())
            return ResumableLoader(ds, batch_size=self.batch_size, sampler=sampler, drop_last=drop_last,
                                   generator=loader_generator(self.seed), **workers)
        sampler = None
        if world > 1:
            # Lightning's default DistributedSampler repeats samples to even out ranks, which would
            # count some images twice in val/test metrics; this one never repeats.
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(ds, shuffle=False)
        return DataLoader(ds, batch_size=self.eval_batch_size, shuffle=False, sampler=sampler,
                          generator=loader_generator(self.seed + 1), **workers)

    def _epoch_to_run(self) -> int:
        trainer = self.trainer
        return int(trainer.fit_loop.epoch_progress.current.processed) if trainer is not None else 0

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
