"""Exact resume: from any per-epoch checkpoint, into a new or the same run directory, a run ends
bit-identical to the uninterrupted one (model, optimizer, scheduler, RNG, data order with workers);
a run stopped mid-epoch by its budget continues from that step with its clock."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import train
from drivseg import budget
from drivseg.checkpoint import read_checkpoint
from drivseg.checkpointing import BestCheckpoint
from drivseg.module import SegmentationModule

from tests.conftest import write_segnet_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# fast_scnn has dropout (the torch RNG matters) and BatchNorm and runs in channels_last (--channels-last
# auto); 2 workers load and augment the batches
EXACT = ["--data", "camvid", "--arch", "fast_scnn", "--crop-size", "64x64", "--batch-size", "2",
         "--num-workers", "2", "--logger", "none", "--epochs", "3", "--deterministic", "--no-report",
         "--precision", "32", "--augment", "strong"]  # fmt: skip


def _final_state(run_dir) -> dict:
    ckpt = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    return {
        "weights": ckpt["state_dict"],
        "optimizer": ckpt["optimizer_states"][0]["state"],
        "scheduler": ckpt["lr_schedulers"][0],
        "step": ckpt["global_step"],
        "epoch": ckpt["epoch"],
    }


def _assert_identical(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    assert a["scheduler"] == b["scheduler"]
    different = [k for k in a["weights"] if not torch.equal(a["weights"][k], b["weights"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    for key, state in a["optimizer"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"][key][name])), (key, name)


@pytest.mark.slow
def test_resume_from_any_epoch_checkpoint_is_bit_identical(tmp_path) -> None:
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 10, "val": 3}, size=(72, 96))
    whole = tmp_path / "whole"
    assert train.main([*EXACT, "--data-root", str(data), "--output-dir", str(whole), "--save-every-epoch"]) == 0
    assert sorted(p.name for p in (whole / "checkpoints").glob("epoch-*.ckpt")) == [
        "epoch-1.ckpt", "epoch-2.ckpt", "epoch-3.ckpt"]  # N = epochs completed
    expected = _final_state(whole)
    expected_results = json.loads((whole / "results.json").read_text())

    # from epoch 1 into a new run directory
    new = tmp_path / "new"
    argv = [*EXACT, "--data-root", str(data), "--output-dir", str(new), "--resume", str(whole / "checkpoints" / "epoch-1.ckpt")]
    assert train.main(argv) == 0
    _assert_identical(expected, _final_state(new))
    assert json.loads((new / "results.json").read_text())["val/mIoU"] == expected_results["val/mIoU"]

    # from epoch 2 into the run's own directory (a copy, so the reference stays)
    same = tmp_path / "same"
    shutil.copytree(whole, same)
    argv = [*EXACT, "--data-root", str(data), "--output-dir", str(same), "--resume", str(same / "checkpoints" / "epoch-2.ckpt")]
    assert train.main(argv) == 0
    _assert_identical(expected, _final_state(same))


def _best_callback_state(ckpt: dict) -> dict:
    """The best-checkpoint callback's state stored in a checkpoint."""
    return next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint"))


class StepClock:
    """A fake clock that advances 10 s per training step (patched in for ``drivseg.budget.now``)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_budget_stop_mid_epoch_resumes_at_that_step_with_its_elapsed_time(tmp_path, monkeypatch) -> None:
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 16, "val": 2})
    clock = StepClock()
    monkeypatch.setattr(budget, "now", clock)
    seen: list[tuple[int, list[str]]] = []
    original = SegmentationModule.training_step

    def step(self, batch, batch_idx):
        clock.t += 10.0
        seen.append((self.global_step, list(batch["name"])))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SegmentationModule, "training_step", step)
    run = tmp_path / "run"
    base = ["--data", "camvid", "--data-root", str(data), "--arch", "tiny_fcn", "--crop-size", "32x48",
            "--batch-size", "2", "--num-workers", "0", "--logger", "none", "--epochs", "20", "--no-report",
            "--output-dir", str(run)]  # fmt: skip
    # 8 steps per epoch; a 35 s budget ends after the 4th step, in the middle of epoch 1
    assert train.main([*base, "--max-time", "35s"]) == 0
    first = json.loads((run / "results.json").read_text())
    assert first["global_step"] == 4 and first["timing"]["stopped_by_budget"]
    last = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    assert last["callbacks"]["WallClockBudget"]["elapsed"] == pytest.approx(40.0)
    # the checkpoint is written after the final validation and records its score as the best
    best_score = _best_callback_state(last)["best_model_score"]
    assert best_score is not None and float(best_score) == pytest.approx(first["val/mIoU"])

    # a larger budget: the clock continues at 40 s, the epoch continues at its 5th batch
    before = [name for _, names in seen for name in names]
    seen.clear()
    assert train.main([*base, "--max-time", "95s", "--resume", str(run / "checkpoints" / "last.ckpt")]) == 0
    second = json.loads((run / "results.json").read_text())
    assert seen[0][0] == 4  # the next optimizer step, not a restart of the epoch
    assert second["global_step"] == 10  # 40 s + 6 steps x 10 s >= 95 s
    rest_of_epoch = [name for step_, names in seen if step_ < 8 for name in names]
    assert len(rest_of_epoch) == 8  # the 4 batches the epoch had left...
    assert sorted(before + rest_of_epoch) == sorted(p.name for p in (data / "train").iterdir())  # ...none twice
    assert second["timing"]["fit_seconds"] >= 95.0


def _scripted_scores(monkeypatch, scores: list[float]) -> None:
    """The best-checkpoint callback sees ``scores[epoch]`` as val/mIoU: which epoch is best is then
    fixed by the test, not by how a tiny network happens to train on this CPU."""

    def candidates(self, trainer):
        return {**trainer.callback_metrics, "val/mIoU": torch.tensor(scores[trainer.current_epoch])}

    monkeypatch.setattr(BestCheckpoint, "_monitor_candidates", candidates)


TINY = ["--data", "camvid", "--arch", "tiny_fcn", "--crop-size", "32x48", "--batch-size", "2",
        "--num-workers", "0", "--logger", "none", "--epochs", "3", "--no-report", "--save-every-epoch"]  # fmt: skip


def _best_state(path) -> tuple[dict, dict]:
    ckpt = read_checkpoint(path)
    return ckpt["state_dict"], _best_callback_state(ckpt)


def test_a_resume_into_a_new_directory_keeps_an_earlier_epochs_best_checkpoint(tmp_path, monkeypatch) -> None:
    _scripted_scores(monkeypatch, [0.5, 0.3, 0.2])  # epoch 1 is the best
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 4, "val": 2})
    whole, new = tmp_path / "whole", tmp_path / "new"
    assert train.main([*TINY, "--data-root", str(data), "--output-dir", str(whole)]) == 0
    # the per-epoch snapshot records its own epoch's validation among the best scores
    assert float(_best_state(whole / "checkpoints" / "epoch-1.ckpt")[1]["best_model_score"]) == 0.5

    argv = [*TINY, "--data-root", str(data), "--output-dir", str(new),
            "--resume", str(whole / "checkpoints" / "epoch-1.ckpt")]  # fmt: skip
    assert train.main(argv) == 0
    expected, _ = _best_state(whole / "checkpoints" / "best.ckpt")
    weights, state = _best_state(new / "checkpoints" / "best.ckpt")
    assert all(torch.equal(weights[k], expected[k]) for k in expected)  # epoch 1's weights, in the new run
    assert float(state["best_model_score"]) == 0.5
    results = json.loads((new / "results.json").read_text())
    assert results["best_checkpoint"] == str(new / "checkpoints" / "best.ckpt")


def test_a_resume_from_before_a_later_best_chooses_among_the_epochs_it_trains(tmp_path, monkeypatch) -> None:
    _scripted_scores(monkeypatch, [0.2, 0.3, 0.5])  # the last epoch is the best
    data = write_segnet_dataset(tmp_path / "camvid", {"train": 4, "val": 2})
    whole, new = tmp_path / "whole", tmp_path / "new"
    assert train.main([*TINY, "--data-root", str(data), "--output-dir", str(whole)]) == 0
    argv = [*TINY, "--data-root", str(data), "--output-dir", str(new),
            "--resume", str(whole / "checkpoints" / "epoch-1.ckpt")]  # fmt: skip
    # whole/best.ckpt now holds epoch 3, not the epoch-1 best that epoch-1.ckpt knew of: not copied
    with pytest.warns(UserWarning, match="no longer holds the best checkpoint"):
        assert train.main(argv) == 0
    _, state = _best_state(new / "checkpoints" / "best.ckpt")
    assert float(state["best_model_score"]) == 0.5 and read_checkpoint(new / "checkpoints" / "best.ckpt")["epoch"] == 2
