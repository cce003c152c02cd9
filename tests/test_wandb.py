"""W&B: offline without credentials, what a run logs, and the API key never written anywhere."""

from __future__ import annotations

import pytest

from drivseg.loggers import wandb_mode

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
