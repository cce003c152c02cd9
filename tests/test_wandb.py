"""W&B: offline without credentials, the dashboard, resume, several runs per process, sweeps and
agents, model artifacts, and the API key never written anywhere. Everything is read back from the
offline run files (``drivseg.wandb_offline``), what ``wandb sync`` would upload."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import train
from drivseg.checkpoint import load_module, read_checkpoint
from drivseg.cli import parse_config
from drivseg.data.camvid import CAMVID, CAMVID_CLASSES
from drivseg.data.transforms import normalize
from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError
from drivseg.evaluation import read_confusion_csv
from drivseg.loggers import checkpoint_argument, finish_wandb, wandb_mode
from drivseg.wandb_dashboard import count_macs
from drivseg.wandb_images import per_image_miou
from drivseg.wandb_offline import offline_runs, read_offline_run

from tests.conftest import run_train

SECRET = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "env, netrc_line, expected",
    [
        ({}, None, "offline"),
        ({"WANDB_API_KEY": SECRET}, None, "online"),
        ({}, f"machine api.wandb.ai\n  login user\n  password {SECRET}\n", "online"),
        ({"WANDB_API_KEY": SECRET, "WANDB_MODE": "offline"}, None, "offline"),
        ({"WANDB_MODE": "disabled"}, None, "disabled"),
    ],
)
def test_wandb_mode_follows_credentials(monkeypatch, tmp_path, env, netrc_line, expected) -> None:
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    netrc = tmp_path / "netrc"
    if netrc_line:
        netrc.write_text(netrc_line)
        netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert wandb_mode() == expected


def test_wandb_run_logs_config_per_class_iou_images_and_never_the_key(tiny_camvid, tmp_path) -> None:
    run_dir = tmp_path / "run"
    args = [
        "--data", "camvid", "--data-root", str(tiny_camvid), "--crop-size", "32x48", "--batch-size", "4",
        "--num-workers", "0", "--epochs", "1", "--logger", "wandb", "--output-dir", str(run_dir),
    ]  # fmt: skip
    # a key in the environment (as a logged-in user has) with offline mode forced for the test
    proc = run_train(args, tmp_path, WANDB_API_KEY=SECRET, WANDB_MODE="offline")
    assert proc.returncode == 0, proc.stderr[-3000:]

    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in [b"val/mIoU", b"val/pixel_acc", b"val/IoU/Road", b"val/IoU/Bicyclist", b"train/loss"]:
        assert key in record, key
    for key in [b'"arch"', b"model_config", b"encoder_weights"]:  # resolved config is logged
        assert key in record, key
    assert b"class_labels" in record and b"Pedestrian" in record
    assert list(runs[0].glob("files/media/images/mask/val/examples_*.mask.png"))

    for path in [p for p in tmp_path.rglob("*") if p.is_file() and "home" not in p.parts]:
        assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"


# ---------------------------------------------------------------------------- the dashboard
@pytest.fixture
def fresh_wandb(monkeypatch):
    """In-process W&B runs, offline, with W&B's per-process settings read afresh before and after."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for key in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    wandb.teardown()
    yield
    finish_wandb()
    wandb.teardown()  # also flushes the offline files of the runs this process wrote


def tiny_wandb_args(root, run_dir, *extra) -> list[str]:
    return ["--data", "camvid", "--data-root", str(root), "--arch", "tiny_fcn", "--crop-size", "32x48",
            "--batch-size", "4", "--num-workers", "0", "--logger", "wandb", "--no-report",
            "--output-dir", str(run_dir), *extra]


def finished_runs(run_dir) -> list:
    """The offline runs of ``run_dir``, complete on disk (W&B writes them from its own process)."""
    import wandb

    wandb.teardown()
    return offline_runs(run_dir)


def table(run, key: str) -> dict:
    """A logged ``wandb.Table`` (``{"columns": [...], "data": [...]}``) read from the run's files."""
    return json.loads((run.path.parent / "files" / run.summary[key]["path"]).read_text())


@pytest.mark.usefixtures("fresh_wandb", "one_torch_thread")
def test_dashboard_holds_best_metric_tables_confusion_matrix_worst_images_and_model_stats(tiny_camvid, tmp_path) -> None:
    run_dir = tmp_path / "run"
    assert train.main(tiny_wandb_args(tiny_camvid, run_dir, "--epochs", "2", "--log-checkpoint")) == 0
    (run,) = finished_runs(run_dir)
    results = json.loads((run_dir / "results.json").read_text())

    # val/mIoU: summary = max over the run, plotted against trainer/global_step
    assert run.metrics["val/mIoU"] == {"step_metric": "trainer/global_step", "summary": ["max"]}
    assert run.metrics["val/loss"]["summary"] == ["min"]
    assert run.summary["val/mIoU"] == {"max": pytest.approx(max(run.values("val/mIoU")))}

    # per-class IoU table of the best checkpoint, with class names, equal to results.json
    iou = table(run, "best/IoU_table")
    assert iou["columns"] == ["class", "IoU", "pixels"]
    assert [row[0] for row in iou["data"]] == list(CAMVID_CLASSES)
    for name, value, pixels in iou["data"]:
        assert value is None or value == pytest.approx(results[f"val/IoU/{name}"], abs=1e-6)
    # W&B's bar chart and confusion matrix panels over those tables
    panels = run.config["_wandb"]["visualize"]
    assert panels["best/IoU_bar"]["panel_config"]["panelDefId"] == "wandb/bar/v0"
    assert panels["best/confusion_matrix"]["panel_config"]["panelDefId"] == "wandb/confusion_matrix/v1"
    # the confusion matrix chart holds our pixel counts (val_confusion.csv), cell by cell
    names, matrix = read_confusion_csv(run_dir / "val_confusion.csv")
    cells = {(a, p): n for a, p, n in table(run, "best/confusion_matrix_table")["data"]}
    assert cells == {(names[i], names[j]): int(matrix[i, j]) for i in range(len(names)) for j in range(len(names))}
    # each validation epoch (2) and the final pass: the normalised matrix as an image
    images = run.values("val/confusion_matrix")
    assert len(images) == 3 and all((run.path.parent / "files" / im["path"]).is_file() for im in images)

    # the worst images of the final pass are the lowest per-image mIoU of the best checkpoint
    module = load_module(results["best_checkpoint"])
    scored = []
    for image_path, mask_path in CAMVID.find_pairs(tiny_camvid, "val"):
        image = torch.from_numpy(np.asarray(Image.open(image_path).convert("RGB"))).permute(2, 0, 1)[None]
        mask = torch.from_numpy(CAMVID.label_spec.encode(np.asarray(Image.open(mask_path))))[None]
        with torch.no_grad():
            pred = module(normalize(image, module.mean, module.std)).argmax(1)
        scored.append((float(per_image_miou(pred, mask, 11)[0]), image_path.name))
    worst = run.values("val/worst")[-1]["captions"]
    assert [c.split()[0] for c in worst] == [name for _, name in sorted(scored)[:4]]

    # model size, MACs at the train crop, throughput and memory
    assert run.summary["model/parameters"] == sum(p.numel() for p in module.parameters())
    assert run.summary["model/input_size"] == "32x48"
    assert run.summary["model/GMACs"] == pytest.approx(count_macs(module.net, (32, 48), torch.device("cpu")) / 1e9)
    assert run.summary["perf/train_images_per_s"] > 0 and run.summary["perf/peak_memory_MB"] > 100

    # --log-checkpoint: best.ckpt as a model artifact, aliases best and latest, score in its metadata
    (model,) = [a for a in run.artifacts if a["type"] == "model"]
    assert model["name"] == f"model-{run.run_id}" and set(model["aliases"]) == {"best", "latest"}
    assert model["files"] == ["best.ckpt"]
    assert model["metadata"]["val/mIoU"] == pytest.approx(results["val/mIoU"], abs=1e-6)


@pytest.mark.usefixtures("fresh_wandb", "one_torch_thread")
def test_resume_continues_the_same_wandb_run_with_increasing_steps(tiny_camvid, tmp_path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert train.main(tiny_wandb_args(tiny_camvid, first, "--epochs", "1")) == 0
    ckpt = first / "checkpoints" / "last.ckpt"
    run_id = json.loads((first / "wandb" / "run.json").read_text())["id"]  # in the run directory...
    assert read_checkpoint(ckpt)["callbacks"]["WandbRunState"]["id"] == run_id  # ...and in the checkpoint
    (first / "wandb" / "run.json").unlink()  # the checkpoint alone is enough
    assert train.main(tiny_wandb_args(tiny_camvid, second, "--epochs", "2", "--resume", str(ckpt))) == 0

    (a,), (b,) = finished_runs(first), finished_runs(second)
    assert a.run_id == b.run_id == run_id
    assert json.loads((second / "wandb" / "run.json").read_text())["id"] == run_id
    # W&B's own step counter continues in the resumed piece, so syncing both appends, drops nothing
    steps = a.values("_step") + b.values("_step")
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and min(b.values("_step")) > max(a.values("_step"))
    # the charts' x axis (trainer/global_step) continues from the checkpoint for every metric
    for key in ("val/mIoU", "val/loss", "train/loss_epoch"):
        at = [row["trainer/global_step"] for run in (a, b) for row in run.history if key in row]
        assert at == sorted(at) and max(at) > max(row["trainer/global_step"] for row in a.history if key in row), key


@pytest.mark.usefixtures("fresh_wandb", "one_torch_thread")
def test_two_runs_in_one_process_leave_two_separate_runs(tiny_camvid, tmp_path) -> None:
    # as cv.py's folds and sweep.py's trials do: train.main twice in one process
    assert train.main(tiny_wandb_args(tiny_camvid, tmp_path / "a", "--epochs", "2")) == 0
    assert train.main(tiny_wandb_args(tiny_camvid, tmp_path / "b", "--epochs", "1", "--lr", "0.01")) == 0
    (a,), (b,) = finished_runs(tmp_path / "a"), finished_runs(tmp_path / "b")
    assert a.run_id != b.run_id
    assert (a.config["epochs"], a.config["lr"]) == (2, 0.002) and (b.config["epochs"], b.config["lr"]) == (1, 0.01)
    # each run has its own metrics: 2 validations + the final pass, and 1 + the final pass
    assert len(a.values("val/mIoU")) == 3 and len(b.values("val/mIoU")) == 2
    assert a.values("_step")[0] == 0 and b.values("_step")[0] == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["val/mIoU"] == pytest.approx(
        b.values("val/mIoU")[-1], abs=1e-6)


def fake_agent(monkeypatch, tmp_path, params: dict, run_id: str = "agent0run", sweep_id: str = "sweep01") -> None:
    """The environment a W&B agent gives the process it starts for one trial."""
    path = tmp_path / "sweep-params.yaml"
    path.write_text(yaml.safe_dump({k: {"value": v} for k, v in params.items()}))
    monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(path))
    monkeypatch.setenv("WANDB_SWEEP_ID", sweep_id)
    monkeypatch.setenv("WANDB_RUN_ID", run_id)


@pytest.mark.usefixtures("fresh_wandb", "one_torch_thread")
def test_sweep_values_win_and_the_logged_config_is_what_ran(tiny_camvid, tmp_path, monkeypatch) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"lr": 0.5, "crop_size": [16, 16], "batch_size": 4, "loss": "dice"}))
    params = {"lr": 0.02, "crop_size": "32x48", "batch_size": 2}
    fake_agent(monkeypatch, tmp_path, params)
    run_dir = tmp_path / "trial"
    argv = ["--config", str(config), *tiny_wandb_args(tiny_camvid, run_dir, "--epochs", "1")]
    argv = [a for a in argv if a not in ("--crop-size", "32x48")]  # the crop comes from the sweep only
    agent_args = [f"--{k}={v}" for k, v in params.items()]  # ${args}, last in the command
    assert train.main([*argv, *agent_args]) == 0

    ran = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (ran["lr"], ran["crop_size"], ran["batch_size"], ran["loss"]) == (0.02, [32, 48], 2, "dice")
    (run,) = finished_runs(run_dir)
    assert (run.run_id, run.sweep_id) == ("agent0run", "sweep01")
    for key, value in ran.items():
        if key in params:  # locked by the agent: its own value, which is what ran once parsed
            assert run.config[key] == params[key]
            assert getattr(parse_config([f"--{key}={run.config[key]}"]), key) == value
        else:
            assert run.config[key] == value, key


@pytest.mark.usefixtures("fresh_wandb", "one_torch_thread")
def test_a_flag_overriding_a_sweep_value_is_an_error(tiny_camvid, tmp_path, monkeypatch) -> None:
    fake_agent(monkeypatch, tmp_path, {"lr": 0.02})
    argv = tiny_wandb_args(tiny_camvid, tmp_path / "trial", "--epochs", "1", "--lr=0.02", "--lr", "0.1")
    with pytest.raises(ConfigError, match=r"sweep parameter lr=0.02 did not reach the run.*lr=0.1"):
        train.main(argv)


@pytest.mark.usefixtures("fresh_wandb", "one_torch_thread")
def test_a_cv_trial_of_an_agent_reports_oof_miou_to_the_agents_run(tiny_camvid, tmp_path, monkeypatch) -> None:
    import sweep

    fake_agent(monkeypatch, tmp_path, {"lr": 0.02})
    # what the agent runs for configs/sweeps/camvid_cv.yaml, on tiny data: sweep.py --trial cv.py ...
    argv = ["--trial", "cv.py", "--sweep-dir", str(tmp_path / "cv"), "--folds", "2", "--data", "camvid",
            "--data-root", str(tiny_camvid), "--arch", "tiny_fcn", "--crop-size", "32x48", "--batch-size", "4",
            "--num-workers", "0", "--logger", "wandb", "--no-report", "--epochs", "1", "--lr=0.02"]
    assert sweep.main(argv) == 0
    exp = tmp_path / "cv" / "agent0run"  # the experiment folder is named by the agent's run
    oof = json.loads((exp / "cv_results.json").read_text())["oof/mIoU"]
    import wandb

    wandb.teardown()
    runs = [read_offline_run(path) for path in sorted(exp.rglob("offline-run-*"))]
    summary = [r for r in runs if r.job_type == "summary"]
    folds = [r for r in runs if r.job_type.startswith("fold-")]
    assert len(summary) == 1 and sorted(r.job_type for r in folds) == ["fold-0", "fold-1"]
    assert (summary[0].run_id, summary[0].sweep_id) == ("agent0run", "sweep01")
    assert summary[0].summary["oof/mIoU"] == pytest.approx(oof)
    # each fold a run of its own, outside the sweep, in the experiment's group
    assert len({r.run_id for r in folds} | {"agent0run"}) == 3 and all(r.sweep_id == "" for r in folds)
    assert {r.group for r in folds} == {summary[0].group}
    assert os.environ["WANDB_RUN_ID"] == "agent0run"  # the agent's environment is back as it was


def test_eval_of_a_wandb_artifact_offline_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    import eval as eval_script

    monkeypatch.setenv("WANDB_MODE", "offline")
    assert run_entry_point(lambda: eval_script.main(["--ckpt", "wandb:me/drivseg/model-abc:best"])) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --ckpt wandb:me/drivseg/model-abc:best")
    assert "online" in err and "wandb artifact get me/drivseg/model-abc:best" in err


def test_a_wandb_artifact_is_downloaded_and_its_checkpoint_returned(tmp_path, monkeypatch) -> None:
    import wandb

    asked = {}

    class FakeArtifact:
        def download(self, root=None):
            folder = tmp_path / "artifacts" / "model-abc:v3"
            folder.mkdir(parents=True)
            (folder / "best.ckpt").write_bytes(b"weights")
            return str(folder)

    class FakeApi:
        def artifact(self, name, type=None):
            asked.update(name=name, type=type)
            return FakeArtifact()

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb, "Api", FakeApi)
    path = checkpoint_argument("wandb:me/drivseg/model-abc:best")
    assert asked == {"name": "me/drivseg/model-abc:best", "type": "model"}
    assert path.name == "best.ckpt" and path.read_bytes() == b"weights"
    assert checkpoint_argument(tmp_path / "x.ckpt") == tmp_path / "x.ckpt"  # plain paths stay paths


def test_log_checkpoint_needs_the_wandb_logger() -> None:
    with pytest.raises(ConfigError, match="--log-checkpoint .* needs --logger wandb"):
        parse_config(["--log-checkpoint", "--logger", "csv"])


@pytest.mark.usefixtures("fresh_wandb")
def test_offline_run_files_read_back_even_when_cut_short(tmp_path) -> None:
    import wandb

    run = wandb.init(project="p", dir=str(tmp_path), mode="offline", config={"lr": 0.1, "crop_size": [32, 48]})
    run.define_metric("val/mIoU", summary="max")
    for step in range(50):
        run.log({"val/mIoU": step / 100, "trainer/global_step": step})
    run.finish()
    wandb.teardown()
    (piece,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    whole = read_offline_run(piece)
    assert whole.config["lr"] == 0.1 and whole.config["crop_size"] == [32, 48]
    assert whole.values("val/mIoU") == [s / 100 for s in range(50)] and whole.values("_step") == list(range(50))
    assert whole.summary["val/mIoU"] == {"max": 0.49} and whole.metrics["val/mIoU"]["summary"] == ["max"]
    # a process killed while writing leaves a partial last record: everything before it still reads
    cut = tmp_path / "cut.wandb"
    cut.write_bytes(piece.read_bytes()[:-300])
    partial = read_offline_run(cut)
    assert partial.values("val/mIoU") == whole.values("val/mIoU")[: len(partial.values("val/mIoU"))]
