"""Checkpoints that survive crashes: atomic writes, ``last.ckpt`` on a clock and on SIGTERM,
per-epoch snapshots, and the RNG states needed for a bit-exact resume.

- ``AtomicCheckpointIO`` writes ``X.ckpt`` to a temporary file in the same folder, flushes it to
  disk and renames it over ``X.ckpt``: a crash or kill during a save leaves the previous checkpoint
  intact (a rename within one file system is atomic).
- ``checkpoint_io()`` is what the trainer uses: ``AtomicCheckpointIO`` behind Lightning's
  ``AsyncCheckpointIO``. A save clones every tensor of the checkpoint on the training thread (a
  point-in-time snapshot: the next steps cannot change what is written) and writes it on a
  background thread, so training does not wait for the disk and its fsync. One write is in
  flight at a time; the trainer's teardown (the end of ``fit``, an exception, SIGTERM) waits for
  it, and a failed write fails the run there or at the next save.
- ``RunCheckpoints`` writes ``last.ckpt`` after every epoch, every ``--checkpoint-every`` of wall
  clock inside long epochs, when a budget stops the run mid-epoch and when the process receives
  SIGTERM (what preemptible machines send before killing it); with ``--save-every-epoch`` it also
  keeps ``epoch-<N>.ckpt`` (N = epochs completed).
- ``BestCheckpoint`` is Lightning's ``ModelCheckpoint`` that also survives a resume into another
  run directory: it copies the earlier run's best checkpoint into the new ``checkpoints/`` and
  keeps its score, so the new run's ``best.ckpt`` is the best of all epochs, not only of those
  trained after the resume.
- ``RngState`` stores the torch, numpy and Python RNG states in every checkpoint and restores them
  on resume (dropout and anything else drawing from the global generators continues the same
  stream; the data order has its own seeds, see ``drivseg.data.sampling``).
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import AsyncCheckpointIO
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from drivseg import budget

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.X.ckpt.tmp-<pid>``, fsync, then rename over ``X.ckpt``."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        _write_atomically(Path(path), lambda f: torch.save(checkpoint, f))


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """``write(file)`` to ``.X.tmp-<pid>`` beside ``path``, fsync, rename over ``path``: readers (and
    other DDP processes writing the same file) never see a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # the write failed half-way: drop the partial file, keep the old one
            tmp.unlink()


def checkpoint_io() -> AsyncCheckpointIO:
    """Atomic writes off the training thread, from a snapshot taken at the save (see the module doc)."""
    return AsyncCheckpointIO(AtomicCheckpointIO())


class RunCheckpoints(pl.Callback):
    """``last.ckpt`` (epoch ends, a wall-clock interval, a budget stop, SIGTERM) and ``epoch-N.ckpt``.

    Args:
        dirpath: the run's ``checkpoints/`` folder.
        save_every_epoch: also keep ``epoch-<N>.ckpt`` after every epoch.
        every_seconds: write ``last.ckpt`` at the first step this long after the previous write.
        resume_hint: the command that resumes this run, printed after a SIGTERM save.
        best: the run's best-checkpoint callback; a save brings it up to date first, so the
            checkpoint records the validation that just ended among the best scores.
    """

    def __init__(
        self,
        dirpath: Path,
        save_every_epoch: bool = False,
        every_seconds: Optional[float] = None,
        resume_hint: str = "",
        clock: Optional[Callable[[], float]] = None,
        best: Optional[ModelCheckpoint] = None,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.best = best
        self.save_every_epoch = save_every_epoch
        self.every_seconds = every_seconds
        self.resume_hint = resume_hint
        self.clock = clock or (lambda: budget.now())
        self._last_save = self.clock()
        self._saved_mid_epoch = False

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    def save(self, trainer: pl.Trainer, path: Path) -> None:
        trainer.save_checkpoint(path, weights_only=False)  # a full checkpoint: resumable
        self._last_save = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loader = trainer.train_dataloader
        if hasattr(loader, "batches_done"):  # ResumableLoader: where a mid-epoch checkpoint resumes
            loader.batches_done = batch_idx + 1
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if self.every_seconds and self.clock() - self._last_save >= self.every_seconds and not last_batch:
            self.save(trainer, self.last_path)

    def on_validation_end(self, trainer, pl_module) -> None:
        # a budget stop mid-epoch: save here, after the final validation (so the checkpoint knows the
        # best score) and before the epoch is closed (so a resume finishes this epoch's batches)
        epoch_loop = trainer.fit_loop.epoch_loop
        if trainer.state.fn == "fit" and trainer.should_stop and not epoch_loop.batch_progress.is_last_batch:
            if self.best is not None:  # Lightning calls it after this callback; its second call is a no-op
                self.best.on_validation_end(trainer, pl_module)
            self.save(trainer, self.last_path)
            self._saved_mid_epoch = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._saved_mid_epoch:
            return
        self.save(trainer, self.last_path)
        if self.save_every_epoch:
            self.save(trainer, self.dirpath / f"epoch-{trainer.current_epoch + 1}.ckpt")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self.save(trainer, self.last_path)
            rank_zero_info(
                f"Received SIGTERM: writing {self.last_path} (the process exits once it is on disk). "
                f"Resume with:\n  {self.resume_hint} --resume {self.last_path}"
            )


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that updates at every validation's end and whose best score and file
    follow a resume into a new run directory.

    At the end of validation, not of the epoch: Lightning runs a ``ModelCheckpoint``'s epoch-end
    hook after every other callback's, so ``last.ckpt`` and ``epoch-N.ckpt`` (written by
    ``RunCheckpoints`` there) would record the best score as it was before the epoch's validation.

    Lightning keeps only ``best_model_path`` when the checkpoint folder changes: the new run then
    picks its best among the epochs trained after the resume, and its ``best.ckpt`` (what eval,
    OOF and the leaderboard read) can be worse than an earlier epoch's. Here the earlier run's best
    file is copied into the new folder and its score kept, provided the file still holds the best
    the resumed checkpoint knew of: resuming from an early ``epoch-N.ckpt`` of a run whose
    ``best.ckpt`` was overwritten later finds a later, better file, and then the best is chosen
    among the epochs trained from here (as Lightning does), with a warning.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(save_on_train_epoch_end=False, **kwargs)

    @property
    def state_key(self) -> str:
        # the parent's key: checkpoints written before this class existed restore into it
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath", self.dirpath)
        old_best = state_dict.get("best_model_path") or ""
        score = state_dict.get("best_model_score")
        if self.dirpath is None or old_dir == self.dirpath or not old_best or score is None:
            super().load_state_dict(state_dict)
            return
        new_best = Path(self.dirpath) / Path(old_best).name
        if not _holds_best(Path(old_best), score):
            warnings.warn(f"{old_best} no longer holds the best checkpoint of the run being resumed "
                          f"(val score {float(score):.4f}); {new_best} is chosen among the epochs trained from here")
            self.best_model_path = ""
            return
        with open(old_best, "rb") as src:  # every DDP process copies; each renames a complete file
            _write_atomically(new_best, lambda f: shutil.copyfileobj(src, f))
        self.best_model_path = str(new_best)
        self.best_model_score = score
        self.best_k_models = {self.best_model_path: score}
        self.kth_best_model_path = self.best_model_path
        self.kth_value = score
        self.current_score = state_dict.get("current_score")


def _holds_best(path: Path, score: torch.Tensor) -> bool:
    """Whether the checkpoint at ``path`` was saved as the best with exactly ``score``."""
    if not path.is_file():
        return False
    try:  # mmap: the weights are not read, only the callback states
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    for key, state in ckpt.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_path") == str(path):
            saved = state.get("best_model_score")
            return saved is not None and torch.equal(torch.as_tensor(saved), torch.as_tensor(score))
    return False


class RngState(pl.Callback):
    """Saves the global torch / numpy / Python RNG states in checkpoints and restores them on resume."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": version, "internal": list(internal), "gauss": gauss},
        }

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
        p = state["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
