"""Runs that survive crashes and mistakes: a save that fails half-way, SIGTERM, a second run into the
same folder, a NaN loss, an unreadable file (skipped on request), and a DDP process that fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import train
from drivseg.checkpoint import read_checkpoint
from drivseg.checkpointing import AtomicCheckpointIO, checkpoint_io
from drivseg.data.sampling import EpochShuffleSampler
from drivseg.entry import run_entry_point
from drivseg.losses import CombinedLoss

from tests.conftest import REPO, clean_env, run_train, write_segnet_dataset

TINY = ["--data", "camvid", "--arch", "tiny_fcn", "--crop-size", "32x48", "--batch-size", "2",
        "--num-workers", "0", "--logger", "none", "--no-report"]  # fmt: skip


def test_a_save_that_fails_half_way_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "step": 1}, path)

    def half_written(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half of a zip archive")  # what a kill during torch.save leaves
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "step": 2}, path)
    monkeypatch.undo()

    ckpt = torch.load(path, weights_only=True)
    assert ckpt["step"] == 1 and torch.equal(ckpt["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left behind


def test_the_trainers_checkpoint_writer_saves_the_state_at_the_save_not_what_training_did_after_it(
    tmp_path, monkeypatch
) -> None:
    path = tmp_path / "last.ckpt"
    io = checkpoint_io()
    weight = torch.ones(3)
    release = threading.Event()
    original = torch.save

    def held_back(obj, f, *args, **kwargs):
        release.wait(timeout=30)  # the disk is slow: the write lands after the next steps
        original(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", held_back)
    io.save_checkpoint({"state_dict": {"w": weight}, "step": 1}, path)
    weight.add_(1)  # the next optimizer step changes the live weights in place
    assert not path.exists()  # the save returned before the write: training did not wait for it
    release.set()
    io.teardown()  # what the end of fit does: wait for the write
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["step"] == 1 and torch.equal(ckpt["state_dict"]["w"], torch.ones(3))


def test_checkpoints_of_a_run_are_written_off_the_training_thread_and_a_failed_write_fails_the_run(
    tiny_camvid, tmp_path, monkeypatch
) -> None:
    writers = []
    original = torch.save

    def full_disk_at_the_second_save(obj, f, *args, **kwargs):
        writers.append(threading.current_thread() is threading.main_thread())
        if len(writers) == 2:
            raise OSError("No space left on device")
        original(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_at_the_second_save)
    run = tmp_path / "run"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "3", "--output-dir", str(run),
            "--val-every", "100"]  # fmt: skip
    with pytest.raises(OSError, match="No space"):
        train.main(argv)
    assert writers and not any(writers)  # every write ran on the writer thread
    assert not (run / "results.json").exists()  # the run did not end as if its checkpoints were saved
    monkeypatch.undo()
    # what is on disk is a whole checkpoint, not a partial one
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] > 0


def test_a_second_run_into_the_same_folder_is_refused_naming_it(tiny_camvid, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "1", "--output-dir", str(run)]
    assert train.main(argv) == 0
    first = (run / "results.json").read_bytes()

    assert run_entry_point(lambda: train.main(argv)) == 2
    err = capsys.readouterr().err
    assert str(run) in err and "--resume" in err and "--overwrite" in err and err.count("\n") == 1
    assert (run / "results.json").read_bytes() == first  # untouched

    assert train.main([*argv, "--overwrite"]) == 0  # asked for explicitly: replaced
    assert not (run / "checkpoints" / "epoch-1.ckpt").exists()


def test_a_nan_loss_stops_at_that_step_naming_the_batch_and_keeps_the_last_good_checkpoint(
    tiny_camvid, tmp_path, monkeypatch, capsys
) -> None:
    calls = {"n": 0}
    original = CombinedLoss.forward

    def nan_at_step_5(self, logits, target):
        loss = original(self, logits, target)
        if torch.is_grad_enabled():  # a training step (validation runs without gradients)
            calls["n"] += 1
            if calls["n"] == 6:  # the 6th training step: epoch 1 (0-based), step 5
                return loss * float("nan")
        return loss

    monkeypatch.setattr(CombinedLoss, "forward", nan_at_step_5)
    run = tmp_path / "run"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "3", "--output-dir", str(run)]
    assert run_entry_point(lambda: train.main(argv)) == 2  # 8 images / batch 2 = 4 steps per epoch

    err = capsys.readouterr().err.strip()
    assert err.startswith("error: training loss is nan at epoch 1, step 5") and err.count("\n") == 0
    assert ".png" in err  # the batch's files are named
    assert not (run / "results.json").exists()
    last = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4  # the end of epoch 0: nothing written after the NaN
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_detect_anomaly_reaches_the_trainer(tiny_camvid, tmp_path, monkeypatch) -> None:
    seen = []
    original = CombinedLoss.forward

    def record(self, logits, target):
        seen.append(torch.is_anomaly_enabled())
        return original(self, logits, target)

    monkeypatch.setattr(CombinedLoss, "forward", record)
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "1", "--output-dir", str(tmp_path / "r"),
            "--detect-anomaly", "--limit-train-batches", "2"]  # fmt: skip
    assert train.main(argv) == 0
    assert seen[0] is True


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the header survives: only decoding fails


def test_bad_samples_skip_counts_and_names_the_files(tmp_path, capsys) -> None:
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 8, "val": 3})
    bad = sorted((data / "train").iterdir())[2]
    _truncate(bad)
    run = tmp_path / "run"
    argv = [*TINY, "--data-root", str(data), "--epochs", "2", "--output-dir", str(run), "--bad-samples", "skip"]
    assert train.main(argv) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["bad_samples"]["count"] == 1 and results["bad_samples"]["files"] == [bad.name]
    assert f"skipped unreadable sample {bad.name}" in capsys.readouterr().out


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError(f"{path} never appeared (exit {proc.poll()}): {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_writes_a_resumable_checkpoint_and_the_resume_finishes(tmp_path) -> None:
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 40, "val": 2})
    run = tmp_path / "run"
    args = [*TINY, "--data-root", str(data), "--output-dir", str(run), "--crop-size", "64x64"]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args, "--epochs", "200"], cwd=tmp_path,
        env=clean_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(run / "history.csv", proc, timeout=120)  # an epoch has finished: training is under way
    proc.send_signal(signal.SIGTERM)  # what a preemptible machine sends
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Resume with:" in out + err and "--resume" in out + err
    assert not (run / "results.json").exists()
    stopped = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert stopped["global_step"] > 0

    resumed = run_train([*args, "--epochs", str(stopped["epoch"] + 2), "--resume", str(run / "checkpoints" / "last.ckpt")],
                        tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert results["global_step"] > stopped["global_step"]


def _file_of_rank(data: Path, rank: int, seed: int = 42) -> Path:
    """A train image only process ``rank`` of 2 reads in the first epoch (the sampler is seeded)."""
    files = sorted((data / "train").iterdir())
    mine = EpochShuffleSampler(len(files), seed, rank=rank, world_size=2).indices()
    return files[mine[0]]


@pytest.mark.slow
@pytest.mark.parametrize("failing_rank", [1, 0])
def test_a_failing_ddp_process_ends_every_process_quickly_and_non_zero(tmp_path, failing_rank) -> None:
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 8, "val": 4})
    bad = _file_of_rank(data, failing_rank)
    _truncate(bad)
    run = tmp_path / "run"
    start = time.monotonic()
    proc = run_train([*TINY, "--data-root", str(data), "--output-dir", str(run), "--epochs", "2",
                      "--accelerator", "cpu", "--devices", "2"], tmp_path, timeout=240)  # fmt: skip
    seconds = time.monotonic() - start
    assert proc.returncode != 0
    assert bad.name in proc.stderr
    assert not (run / "results.json").exists()
    assert seconds < 120, f"took {seconds:.0f} s: a process waited for the failed one"
    # no process of the run is left behind
    left = subprocess.run(["pgrep", "-f", str(run)], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in left if int(pid) != os.getpid()]
