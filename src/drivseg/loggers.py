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


def build_logger(kind: str, run_dir: Path, run_name: str, project: str, entity: Optional[str]) -> Optional[Logger]:
    """The logger named by ``--logger``; ``none`` -> None. Files go under the run directory."""
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
    return WandbLogger(name=run_name, project=project, entity=entity, save_dir=str(run_dir), mode=mode)
