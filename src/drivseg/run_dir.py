"""The run directory: refuse to overwrite a finished run, and the command that resumes one."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from drivseg.errors import ConfigError

# what train.py writes into a run directory; --overwrite deletes exactly these
RUN_ARTIFACTS = ("checkpoints", "results.json", "config.yaml", "history.csv", "val_confusion.csv",
                 "augment.yaml", "report.html", "csv", "tensorboard", "wandb")


def global_rank_from_env() -> int:
    """This process's rank before any process group exists: DDP launchers (Lightning's, torchrun,
    SLURM) start the other processes with their rank in the environment; the first has none."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key])
    return int(os.environ.get("NODE_RANK", 0)) * 1000 + int(os.environ.get("LOCAL_RANK", 0))


def holds_a_run(run_dir: Path) -> bool:
    """True when ``run_dir`` has a finished run (results.json) or any checkpoint."""
    return (run_dir / "results.json").is_file() or any((run_dir / "checkpoints").glob("*.ckpt"))


def prepare_run_dir(run_dir: Path, resume: Optional[str], overwrite: bool) -> None:
    """Refuse a folder that holds a run unless ``--resume`` or ``--overwrite``; ``--overwrite``
    deletes the previous run's files (only the ones train.py writes, never anything else)."""
    if global_rank_from_env() != 0 or not holds_a_run(run_dir):
        return
    if resume:
        return
    if not overwrite:
        raise ConfigError(
            f"run directory {run_dir} already holds a run (results.json or checkpoints); "
            f"choose another --output-dir / --run-name, continue it with --resume {run_dir}/checkpoints/last.ckpt, "
            "or replace it with --overwrite"
        )
    for name in RUN_ARTIFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def resume_command(argv: Optional[Sequence[str]]) -> str:
    """``python train.py <the same flags>`` without any ``--resume``: the flags a resume must repeat."""
    args = list(sys.argv[1:] if argv is None else argv)
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--resume":
            skip = True
            continue
        if arg.startswith("--resume="):
            continue
        kept.append(arg)
    return shlex.join(["python", "train.py", *kept])
