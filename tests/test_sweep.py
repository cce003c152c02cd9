"""Sweeps: --key=value flags as W&B agents pass them, and sweep.py running a sweep YAML locally."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import yaml

import sweep as sweep_script
from drivseg.cli import parse_config
from drivseg.errors import ConfigError
from drivseg.sweep import (
    STOPPED_EXIT_CODE,
    StopAfterTrial,
    Trial,
    load_sweep,
    run_agent_trial,
    run_sweep,
    trial_argv,
    trials,
)

from tests.conftest import REPO

# a stand-in for train.py: records its argv, writes what a finished run leaves, and can send
# itself Ctrl-C while "training" the trial named in FAKE_INTERRUPT_AT
FAKE_PROGRAM = '''
import json, os, signal
from pathlib import Path

CALLS = []


def main(argv):
    out = Path(argv[argv.index("--output-dir") + 1])
    CALLS.append(out.name)
    if os.environ.get("FAKE_INTERRUPT_AT") == out.name.split("-")[0]:
        os.kill(os.getpid(), signal.SIGINT)  # as a user pressing Ctrl-C during this trial
    flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(json.dumps({"arch": "fake", "lr": float(flags["lr"]), "loss": flags["loss"]}))
    (out / "results.json").write_text(json.dumps({"val/mIoU": float(flags["lr"]) * (2 if flags["loss"] == "dice" else 1)}))
    return 0
'''


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def fake_sweep(tmp_path, monkeypatch) -> Path:
    """A 2 x 2 grid over a fake program in tmp_path."""
    program = tmp_path / f"fake_program_{tmp_path.name}.py"  # a module name of its own per test
    program.write_text(FAKE_PROGRAM)
    return write_yaml(tmp_path / "grid.yaml", {
        "name": "grid", "program": str(program), "method": "grid",
        "metric": {"name": "val/mIoU", "goal": "maximize"},
        "parameters": {"lr": {"values": [0.1, 0.2]}, "loss": {"values": ["ce", "dice"]}},
        "command": ["${env}", "${interpreter}", "${program}", "--fixed", "1", "${args}"],
    })  # fmt: skip


def fake_calls(sweep_file: Path) -> list[str]:
    import sys

    return sys.modules[Path(load_sweep(sweep_file).program).stem].CALLS


# ---------------------------------------------------------------------------- flags
@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--batch_size=3"], {"batch_size": 3}),
        (["--batch-size=3"], {"batch_size": 3}),
        (["--crop_size=[176, 240]"], {"crop_size": [176, 240]}),
        (["--crop_size=176x240"], {"crop_size": [176, 240]}),
        (["--scale_range=[0.5, 1.5]"], {"scale_range": [0.5, 1.5]}),
        (["--log_checkpoint=True", "--deterministic=False"], {"log_checkpoint": True, "deterministic": False}),
        (["--ema=None", "--encoder_weights=None"], {"ema": None, "encoder_weights": None}),
        (["--lr=1e-05", "--loss=ce:1.0,lovasz:0.5"], {"lr": 1e-05, "loss": "ce:1.0,lovasz:0.5"}),
    ],
)
def test_agent_style_flags_parse_like_ordinary_flags(flags, expected) -> None:
    cfg = vars(parse_config(flags))
    assert {k: cfg[k] for k in expected} == expected


def test_trial_flags_override_the_config_file_and_defaults(tmp_path) -> None:
    config = write_yaml(tmp_path / "exp.yaml", {"lr": 0.5, "batch_size": 16, "crop_size": [64, 64], "loss": "ce"})
    trial = Trial(0, {"lr": 0.001, "batch_size": 2, "crop_size": "176x240"})
    cfg = parse_config(["--config", str(config), *trial.flags()])
    assert (cfg.lr, cfg.batch_size, cfg.crop_size, cfg.loss) == (0.001, 2, [176, 240], "ce")
    assert trial.flags() == ["--lr=0.001", "--batch_size=2", "--crop_size=176x240"]  # the agent's ${args}


def test_a_boolean_sweep_value_must_be_true_or_false() -> None:
    with pytest.raises(ConfigError, match="log_checkpoint=true or"):
        parse_config(["--log_checkpoint=maybe"])


# ---------------------------------------------------------------------------- trials
def test_grid_is_every_combination_in_order(fake_sweep) -> None:
    got = [t.params for t in trials(load_sweep(fake_sweep), None)]
    assert got == [{"lr": 0.1, "loss": "ce"}, {"lr": 0.1, "loss": "dice"}, {"lr": 0.2, "loss": "ce"},
                   {"lr": 0.2, "loss": "dice"}]  # fmt: skip
    assert len({t.name for t in trials(load_sweep(fake_sweep), None)}) == 4
    assert [t.params for t in trials(load_sweep(fake_sweep), 2)] == got[:2]


def test_random_draws_are_reproducible_and_within_bounds(tmp_path) -> None:
    path = write_yaml(tmp_path / "r.yaml", {"program": "train.py", "method": "random", "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
        "batch_size": {"min": 2, "max": 8},
        "loss": {"values": ["ce", "dice"]},
    }})  # fmt: skip
    sweep = load_sweep(path)
    many = trials(sweep, 200, seed=3)
    assert [t.params for t in trials(sweep, 5, seed=3)] == [t.params for t in many[:5]]  # --count extends
    assert [t.params for t in trials(sweep, 5, seed=4)] != [t.params for t in many[:5]]
    lrs = [t.params["lr"] for t in many]
    assert all(1e-4 <= v <= 1e-2 for v in lrs)
    # log-uniform: about half of the draws below the geometric midpoint 1e-3
    assert 0.35 < sum(v < 1e-3 for v in lrs) / len(lrs) < 0.65
    assert {t.params["batch_size"] for t in many} == set(range(2, 9))
    assert {t.params["loss"] for t in many} == {"ce", "dice"}
    with pytest.raises(ConfigError, match="--count"):
        trials(sweep, None)


def test_bayes_runs_as_random_search_and_says_so(tmp_path, capsys) -> None:
    path = write_yaml(tmp_path / "b.yaml", {"program": "train.py", "method": "bayes",
                                            "parameters": {"lr": {"min": 0.001, "max": 0.1}}})
    got = trials(load_sweep(path), 3)
    said = capsys.readouterr().out
    assert "wandb agent" in said and "running random search locally instead" in said
    assert len(got) == 3 and all(0.001 <= t.params["lr"] <= 0.1 for t in got)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"method": "hyperband"}, "method 'hyperband'"),
        ({"parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}}}, "grid search needs"),
        ({"parameters": {"lr": {"distribution": "beta"}}}, "distribution 'beta'"),
        ({"command": ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]}, "args_no_hyphens"),
        ({"command": ["${env}", "${interpreter}", "${program}", "--lr", "0.1"]}, "no \\$\\{args\\}"),
        ({"program": None}, "'program' is missing"),
        ({"parameters": {"opt": {"parameters": {"lr": {"value": 1}}}}}, "nested parameters"),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path, change, message) -> None:
    data = {"program": "train.py", "method": "grid", "parameters": {"lr": {"values": [0.1]}}} | change
    path = write_yaml(tmp_path / "bad.yaml", {k: v for k, v in data.items() if v is not None})
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)


def test_trial_argv_puts_the_sweep_values_last_and_the_run_dir_after_them(fake_sweep, tmp_path) -> None:
    sweep = load_sweep(fake_sweep)
    trial = Trial(1, {"lr": 0.1, "loss": "dice"})
    argv = trial_argv(sweep, trial, tmp_path / "t", extra=["--lr", "9"])
    assert argv == ["--fixed", "1", "--lr", "9", "--lr=0.1", "--loss=dice", "--output-dir", str(tmp_path / "t")]


def test_a_train_trial_is_named_grouped_and_resumed_from_its_last_checkpoint(tmp_path) -> None:
    sweep = load_sweep(write_yaml(tmp_path / "s.yaml", {"name": "s", "program": "train.py", "method": "grid",
                                                        "parameters": {"lr": {"values": [0.1]}}}))
    trial = trials(sweep, None)[0]
    argv = trial_argv(sweep, trial, tmp_path / trial.name, state="partial")
    assert argv[:4] == ["--run-name", f"s-{trial.name}", "--wandb-group", "s"]
    assert argv[-2:] == ["--resume", str(tmp_path / trial.name / "checkpoints" / "last.ckpt")]


def test_the_repository_sweeps_resolve_to_valid_commands(tmp_path) -> None:
    paths = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"camvid_lr_loss", "camvid_arch_encoder", "camvid_cv"}
    programs = set()
    for path in paths:
        sweep = load_sweep(path)
        programs.add(sweep.program)
        for trial in trials(sweep, 3):
            argv = trial_argv(sweep, trial, tmp_path / trial.name)
            if sweep.program == "train.py":
                cfg = parse_config(argv)  # every flag is train.py's, and the sweep's values are what runs
                for key, value in trial.params.items():
                    assert getattr(cfg, key) == value, (path.name, key)
            else:
                assert "sweep.py" not in argv and "--trial" not in argv and "--sweep-dir" not in argv
    assert programs == {"train.py", "cv.py"}
    assert load_sweep(REPO / "configs" / "sweeps" / "camvid_cv.yaml").metric_name == "oof/mIoU"


# ---------------------------------------------------------------------------- running
def test_ctrl_c_stops_after_the_current_trial_and_a_rerun_runs_only_the_rest(fake_sweep, tmp_path, monkeypatch) -> None:
    out = tmp_path / "runs"
    monkeypatch.setenv("FAKE_INTERRUPT_AT", "t001")
    assert run_sweep(fake_sweep, sweep_dir=out) == STOPPED_EXIT_CODE
    calls = fake_calls(fake_sweep)
    assert [c.split("-")[0] for c in calls] == ["t000", "t001"]  # t001 finished after the Ctrl-C
    assert sorted(p.parent.name.split("-")[0] for p in out.glob("*/results.json")) == ["t000", "t001"]

    monkeypatch.delenv("FAKE_INTERRUPT_AT")
    calls.clear()
    assert run_sweep(fake_sweep, sweep_dir=out) == 0
    assert [c.split("-")[0] for c in calls] == ["t002", "t003"]
    assert len(list(out.glob("*/results.json"))) == 4
    board = (out / "leaderboard.md").read_text()
    assert board.count("t00") == 4
    # best first: lr 0.2 with dice scores 0.4
    first_row = next(line for line in board.splitlines() if "t00" in line)
    assert "t003" in first_row
    trial = yaml.safe_load((out / calls[0] / "sweep_trial.yaml").read_text())
    assert trial["params"] == {"lr": 0.2, "loss": "ce"} and trial["index"] == 2


def test_a_second_ctrl_c_interrupts_at_once() -> None:
    with StopAfterTrial() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs at the next bytecode boundary
                math.sqrt(2)


def test_agent_trial_gets_a_folder_named_by_the_wandb_run(fake_sweep, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_RUN_ID", "abc123xy")
    program = load_sweep(fake_sweep).program
    assert sweep_script.main(["--trial", program, "--sweep-dir", str(tmp_path / "cv"), "--lr=0.3", "--loss=ce"]) == 0
    assert json.loads((tmp_path / "cv" / "abc123xy" / "results.json").read_text())["val/mIoU"] == 0.3
    assert run_agent_trial(program, tmp_path / "cv2", ["--lr=0.1", "--loss=ce"]) == 0
    assert (tmp_path / "cv2" / "abc123xy" / "results.json").is_file()


@pytest.mark.usefixtures("one_torch_thread")
def test_interrupted_sweep_of_real_train_runs_ends_with_four_runs_and_a_leaderboard(tiny_camvid, tmp_path,
                                                                                    monkeypatch) -> None:
    import drivseg.sweep as sweep_module

    config = write_yaml(tmp_path / "tiny.yaml", {"data": "camvid", "arch": "tiny_fcn", "crop_size": [32, 48],
                                                 "batch_size": 4, "num_workers": 0, "epochs": 1, "logger": "csv",
                                                 "report": False, "lr": 0.5, "loss": "dice"})
    path = write_yaml(tmp_path / "lr_loss.yaml", {
        "name": "lr_loss", "program": "train.py", "method": "grid",
        "metric": {"name": "val/mIoU", "goal": "maximize"},
        "parameters": {"lr": {"values": [0.01, 0.002]}, "loss": {"values": ["ce", "ce+dice"]}},
        "command": ["${env}", "${interpreter}", "${program}", "--config", str(config), "${args}"],
    })  # fmt: skip
    out = tmp_path / "runs"
    argv = [str(path), "--output-dir", str(out), "--", "--data-root", str(tiny_camvid)]
    real_program_main, started = sweep_module.program_main, []

    def recording(interrupt_at=None):
        """train.py's main, noting each trial it starts; Ctrl-C while trial ``interrupt_at`` trains."""
        def program_main(program):
            train_main = real_program_main(program)

            def main(trial_argv):
                started.append(Path(trial_argv[trial_argv.index("--output-dir") + 1]).name)
                if len(started) == interrupt_at:
                    os.kill(os.getpid(), signal.SIGINT)
                return train_main(trial_argv)

            return main

        return program_main

    monkeypatch.setattr(sweep_module, "program_main", recording(interrupt_at=2))
    assert sweep_script.main(argv) == STOPPED_EXIT_CODE
    assert len(list(out.glob("*/results.json"))) == 2  # the trial running at the Ctrl-C finished
    first = list(started)
    started.clear()
    monkeypatch.setattr(sweep_module, "program_main", recording())
    assert sweep_script.main(argv) == 0  # the same command again: only the two missing trials run
    assert len(started) == 2 and not set(started) & set(first)

    done = sorted(out.glob("*/results.json"))
    assert len(done) == 4
    for trial in trials(load_sweep(path), None):
        ran = yaml.safe_load((out / trial.name / "config.yaml").read_text())
        assert (ran["lr"], ran["loss"]) == (trial.params["lr"], trial.params["loss"])  # not the config's 0.5 / dice
        assert ran["run_name"] == f"lr_loss-{trial.name}"
    rows = [line for line in (out / "leaderboard.md").read_text().splitlines() if "| t00" in line]
    assert len(rows) == 4
    assert (out / "leaderboard.csv").is_file()
    assert all(0.0 <= json.loads(p.read_text())["val/mIoU"] <= 1.0 for p in done)
