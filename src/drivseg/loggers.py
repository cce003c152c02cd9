"""Experiment loggers: W&B (offline automatically without credentials), CSV, TensorBoard."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Optional

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info

WANDB_HOST = "api.wandb.ai"


def wandb_has_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """``WANDB_MODE`` when the user set it, else online with credentials and offline without."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_has_credentials() else "offline"


def build_logger(
    kind: str,
    run_dir: Path,
    run_name: str,
    project: str,
    entity: Optional[str],
    group: Optional[str] = None,
    job_type: Optional[str] = None,
) -> Optional[Logger]:
    """The logger named by ``--logger``; ``none`` -> None. Files go under the run directory.

    ``group`` / ``job_type`` (W&B only) put the runs of one experiment together, e.g. the folds of a
    cross-validation (group = experiment, job type = fold-K).
    """
    if kind == "none":
        return None
    if kind == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")
    from pytorch_lightning.loggers import WandbLogger

    mode = wandb_mode()
    if mode == "offline":
        rank_zero_info(
            f"W&B: no credentials found (WANDB_API_KEY or `wandb login`), logging offline to {run_dir}/wandb; "
            f"upload later with `wandb sync {run_dir}/wandb/offline-run-*`"
        )
    return WandbLogger(name=run_name, project=project, entity=entity, save_dir=str(run_dir), mode=mode,
                       group=group, job_type=job_type)


def finish_wandb() -> None:
    """Finish the W&B run this process has open, if any.

    Every training run in a process (cv.py's folds, sweep.py's trials) must end its W&B run before
    the next starts: W&B otherwise keeps logging into the first run and drops the second run's
    metrics ("Step must only increase"). ``train.main`` calls this when it returns or fails.
    """
    import sys

    if "wandb" not in sys.modules:  # never imported: no run can be open
        return
    import wandb

    if wandb.run is not None:
        wandb.finish()


def log_summary_run(
    run_dir: Path,
    name: str,
    project: str,
    entity: Optional[str],
    summary: dict,
    group: Optional[str] = None,
    job_type: str = "summary",
    config: Optional[dict] = None,
) -> None:
    """One W&B run holding only summary values (e.g. the OOF scores of a CV experiment), finished at once."""
    import wandb

    finish_wandb()
    run = wandb.init(project=project, entity=entity, name=name, group=group, job_type=job_type,
                     dir=str(run_dir), mode=wandb_mode(), config=config or {}, reinit="finish_previous")
    run.summary.update(summary)
    run.finish()
