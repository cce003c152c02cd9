"""A train data order that depends only on (seed, epoch), so a resumed run sees the same batches.

PyTorch's default shuffling and worker seeding draw from the global RNG each time an iterator is
created; a run resumed from a checkpoint creates its iterators at a different moment than the
uninterrupted run did, so its data order and augmentations would differ. Here:

- ``EpochShuffleSampler`` permutes the indices with a generator seeded by (seed, epoch) and splits
  them across DDP processes itself (Lightning is told not to add a DistributedSampler);
- every index it yields carries a per-sample seed derived from (seed, epoch, index), which the
  dataset uses for that sample's augmentation, so augmentations do not depend on which worker
  process loads a sample or on how many workers there are;
- ``ResumableLoader`` reports how many batches of the epoch training consumed (Lightning stores
  that in the checkpoint) and skips them when a run resumes mid-epoch.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class EpochShuffleSampler(Sampler):
    """Yields ``(index, sample_seed)``: a (seed, epoch) permutation, this process's share of it.

    Args:
        size: number of samples.
        seed: the run's seed.
        shuffle: permute each epoch (train) or keep the order.
        rank, world_size: this process and the number of processes; each gets
            ``size // world_size`` samples per epoch when ``drop_last`` (so all ranks step together),
            else the permutation is padded by repeating its start, as DistributedSampler does.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        # (epoch, samples): resume inside that epoch, skipping the samples already trained on
        self.resume_at: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch."""
        self.epoch = int(epoch)

    def per_rank(self) -> int:
        if self.drop_last:
            return self.size // self.world_size
        return -(-self.size // self.world_size)

    def __len__(self) -> int:
        return self.per_rank()

    def indices(self) -> list[int]:
        """This process's indices of the current epoch, in order."""
        order = np.arange(self.size)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        n = self.per_rank() * self.world_size
        if n > len(order):  # pad so every rank gets as many samples
            order = np.concatenate([order, order[: n - len(order)]])
        return [int(i) for i in order[:n][self.rank :: self.world_size]]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip = 0
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            skip = self.resume_at[1]
        self.resume_at = None  # only the first epoch after a resume is a partial one
        for index in self.indices()[skip:]:
            yield index, sample_seed(self.seed, self.epoch, index)


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is part of the checkpoint (Lightning's
    ``state_dict`` / ``load_state_dict`` protocol for train loaders).

    ``batches_done`` is set by the training loop's callback after every optimizer batch; it is not
    counted here because Lightning fetches one batch ahead of the one being trained on.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = 0

    def state_dict(self) -> dict:
        sampler = self.batch_sampler.sampler if self.batch_sampler is not None else self.sampler
        return {"epoch": int(getattr(sampler, "epoch", 0)), "batches_done": int(self.batches_done)}

    def load_state_dict(self, state: dict) -> None:
        sampler = self.batch_sampler.sampler if self.batch_sampler is not None else self.sampler
        done = int(state.get("batches_done", 0))
        if isinstance(sampler, EpochShuffleSampler):
            # an end-of-epoch checkpoint names the finished epoch: the next one starts from its beginning
            sampler.resume_at = (int(state.get("epoch", 0)), done * int(self.batch_size or 1))
        self.batches_done = done


def loader_generator(seed: int) -> torch.Generator:
    """A generator of the loader's own, so creating an iterator never draws from the global RNG
    (which would shift the model's RNG stream, e.g. dropout, between a resumed and an uninterrupted run)."""
    return torch.Generator().manual_seed(int(seed))


def worker_init(worker_id: int) -> None:
    """DataLoader workers: one OpenCV thread each (workers already run in parallel; OpenCV's own
    thread pool in every worker oversubscribes the cores), and no torch intra-op threads."""
    import cv2

    cv2.setNumThreads(0)
    torch.set_num_threads(1)
