"""Experiment loggers: W&B (offline automatically without credentials), CSV, TensorBoard.

W&B runs follow four rules, each for a known way this stack goes wrong:

- **One run per training run, finished before the next starts.** ``finish_wandb`` ends it (train.main
  calls it however a run ends); otherwise a second run in the same process (cv.py's folds, sweep.py's
  trials) logs into the first and its metrics are dropped ("Step must only increase").
- **A resumed run continues its W&B run.** The run id is written to ``RUN/wandb/run.json`` and into
  every checkpoint (``WandbRunState``); ``--resume CKPT`` reads it back and opens the run with
  ``resume="allow"``, so online the history continues, and offline the pieces share the id and
  ``wandb sync RUN/wandb/offline-run-*`` uploads them into one run, in order. Charts use
  ``trainer/global_step`` as their x axis, which the checkpoint restores.
- **A sweep's values win, and the logged config is what ran.** A W&B agent locks its parameters in
  the run's config; ``log_config`` checks that every locked value is the one the run used (a flag
  after ``${args}`` in the sweep's command would otherwise silently override it) and logs the rest
  of the resolved config without fighting the lock.
- **Under a W&B agent, a cross-validation trial is one run**: the agent's run (``WANDB_RUN_ID``)
  receives the summary with ``oof/mIoU`` (``log_summary_run``); each fold (job type ``fold-K``)
  gets a run of its own in the same group instead of writing into the agent's run.

Only rank 0 creates or writes a run (Lightning's ``rank_zero_experiment``).
"""

from __future__ import annotations

import json
import netrc
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from drivseg.errors import ConfigError

WANDB_HOST = "api.wandb.ai"
RUN_FILE = Path("wandb") / "run.json"  # inside the run directory; --overwrite deletes it with wandb/
CHECKPOINT_PREFIX = "wandb:"
FOLD_JOB_PREFIX = "fold-"  # cv.py's job type for fold K
# what a W&B agent sets for the run it started; a fold of a CV trial must not take it
AGENT_ENV = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH")
_agent_env: dict[str, str] = {}  # the agent's variables while folds run on runs of their own


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
    resume: Optional[str] = None,
) -> Optional[Logger]:
    """The logger named by ``--logger``; ``none`` -> None. Files go under the run directory.

    ``group`` / ``job_type`` (W&B only) put the runs of one experiment together, e.g. the folds of a
    cross-validation (group = experiment, job type = fold-K). ``resume`` (the ``--resume``
    checkpoint) continues the W&B run that checkpoint belongs to.
    """
    if kind == "none":
        return None
    if kind == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")
    from pytorch_lightning.loggers import WandbLogger

    if job_type and job_type.startswith(FOLD_JOB_PREFIX):
        _leave_agent_run()
    mode = wandb_mode()
    if mode == "offline":
        rank_zero_info(
            f"W&B: no credentials found (WANDB_API_KEY or `wandb login`), logging offline to {run_dir}/wandb; "
            f"upload later with `wandb sync {run_dir}/wandb/offline-run-*`"
        )
    previous = resumed_run(run_dir, resume)
    if previous.get("id"):
        rank_zero_info(f"W&B: continuing run {previous['id']}")
    return WandbLogger(name=previous.get("name") or run_name, project=project, entity=entity, save_dir=str(run_dir),
                       mode=mode, group=group, job_type=job_type, id=previous.get("id"), resume="allow")


def wandb_run(trainer: pl.Trainer):
    """The W&B run of ``trainer`` on rank 0, else None (no W&B logger, or another rank)."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            return logger.experiment
    return None


# ---------------------------------------------------------------------------- run id and resume
def resumed_run(run_dir: Path, resume: Optional[str]) -> dict:
    """The W&B run a ``--resume`` continues, ``{"id", "name"}``: the checkpoint's, else what its run
    directory (or ``run_dir``) recorded; ``{}`` for a new run (W&B then picks an id, or takes an
    agent's)."""
    if not resume:
        return {}
    ckpt = Path(resume)
    for found in (checkpoint_run(ckpt), read_run_file(ckpt.resolve().parent.parent), read_run_file(Path(run_dir))):
        if found.get("id"):
            return found
    return {}


def checkpoint_run(path: Path) -> dict:
    """What ``WandbRunState`` stored in a checkpoint (``{}``: nothing, or unreadable)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # Lightning reports an unusable checkpoint itself when it resumes from it
        return {}
    return dict((ckpt.get("callbacks") or {}).get(WandbRunState.__qualname__) or {})


def read_run_file(run_dir: Path) -> dict:
    """``RUN/wandb/run.json`` (``{}`` when absent)."""
    try:
        return json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def last_offline_step(folders: Sequence[Path], run_id: str) -> Optional[int]:
    """The highest ``_step`` in the offline pieces of run ``run_id`` under ``folder/wandb/``."""
    from drivseg.wandb_offline import read_offline_run

    pieces = [piece for folder in dict.fromkeys(Path(f).resolve() for f in folders)
              for piece in sorted(folder.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))]
    if not pieces:
        return None
    _reset_wandb()  # a piece written by this process is complete on disk only after a teardown
    steps = [row["_step"] for piece in pieces for row in read_offline_run(piece).history if "_step" in row]
    return max(steps) if steps else None


class WandbRunState(pl.Callback):
    """Records the W&B run (id, name) in ``RUN/wandb/run.json`` when fit starts and in every
    checkpoint. A resumed offline run continues W&B's own step counter (``_step``) after the highest
    step of its earlier offline pieces, so ``wandb sync`` appends them without dropping rows
    (online, W&B resumes the counter itself)."""

    def __init__(self, run_dir: Path, resume: Optional[str] = None) -> None:
        self.run_dir = Path(run_dir)
        self.run: dict = {}
        self.last_step: Optional[int] = None
        previous = resumed_run(run_dir, resume) if wandb_mode() == "offline" else {}
        if previous.get("id"):  # read now: the pieces are complete on disk before this run starts
            self.last_step = last_offline_step([Path(resume).resolve().parent.parent, self.run_dir], previous["id"])

    def setup(self, trainer, pl_module, stage: str) -> None:
        run = wandb_run(trainer) if stage == "fit" else None
        if run is None:
            return
        self.run = {"id": run.id, "name": run.name}
        record = {**self.run, "project": run.project, "entity": getattr(run, "entity", None), "mode": wandb_mode(),
                  "group": run.group, "job_type": run.job_type, "sweep_id": getattr(run, "sweep_id", None),
                  "url": getattr(run, "url", None)}
        path = self.run_dir / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        if self.last_step is not None and run.step <= self.last_step:
            run.log({"resumed": 1}, step=self.last_step + 1)  # joins the next row; later rows count on from it

    def state_dict(self) -> dict:
        return dict(self.run)

    def load_state_dict(self, state: dict) -> None:
        pass  # read before the logger is built (resumed_run); the open run is the one to keep


# ---------------------------------------------------------------------------- config
@rank_zero_only
def log_config(logger: Optional[Logger], config: dict, argv: Optional[Sequence[str]] = None) -> None:
    """Send the resolved config to the logger. Under a W&B sweep, the agent's locked parameters are
    first checked against what ran (re-parsing ``argv`` with the sweep's flags appended must change
    nothing) and are not sent again (W&B would ignore them with a warning per key)."""
    if logger is None:
        return
    if type(logger).__name__ != "WandbLogger":
        logger.log_hyperparams(config)
        return
    run = logger.experiment
    locked = {k: run.config[k] for k in getattr(run.config, "_locked", {}) if k in run.config}
    if locked:
        check_sweep_values(locked, config, sys.argv[1:] if argv is None else list(argv))
    logger.log_hyperparams({k: v for k, v in config.items() if k not in locked})


def check_sweep_values(sweep: dict, config: dict, argv: Sequence[str]) -> None:
    """Fail when a sweep parameter did not reach the run (something after ``${args}`` overrode it)."""
    from drivseg.cli import parse_config

    flags = [f"--{key}={value}" for key, value in sweep.items()]  # the agent's ${args} format
    again = vars(parse_config([*argv, *flags]))
    for key, value in sweep.items():
        dest = key.replace("-", "_")
        if dest in config and again.get(dest) != config[dest]:
            raise ConfigError(
                f"sweep parameter {key}={value!r} did not reach the run, which used {dest}={config[dest]!r}; "
                "put ${args} last in the sweep's command so the sweep's flags win"
            )


# ---------------------------------------------------------------------------- several runs, agents
def finish_wandb() -> None:
    """Finish the W&B run this process has open, if any.

    Every training run in a process (cv.py's folds, sweep.py's trials) must end its W&B run before
    the next starts: W&B otherwise keeps logging into the first run and drops the second run's
    metrics ("Step must only increase"). ``train.main`` calls this when it returns or fails.
    """
    if "wandb" not in sys.modules:  # never imported: no run can be open
        return
    import wandb

    if wandb.run is not None:
        wandb.finish()


def _reset_wandb() -> None:
    """W&B reads its environment once per process setup; a teardown makes the next run read it again."""
    if "wandb" in sys.modules:
        import wandb

        finish_wandb()
        wandb.teardown()


def _leave_agent_run() -> None:
    """Under a W&B agent, give this fold a run of its own (not the agent's run, not in the sweep)."""
    found = {k: os.environ.pop(k) for k in AGENT_ENV if k in os.environ}
    if found:
        _agent_env.update(found)
        _reset_wandb()


def _return_to_agent_run() -> None:
    """Undo ``_leave_agent_run``: the next run is the agent's again."""
    if _agent_env:
        os.environ.update(_agent_env)
        _agent_env.clear()
        _reset_wandb()


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
    """One W&B run holding only summary values (e.g. the OOF scores of a CV experiment), finished at
    once. Under a W&B agent this is the agent's run, so the sweep sees the experiment's objective."""
    import wandb

    finish_wandb()
    _return_to_agent_run()
    run = wandb.init(project=project, entity=entity, name=name, group=group, job_type=job_type,
                     dir=str(run_dir), mode=wandb_mode(), config=config or {}, reinit="finish_previous")
    run.summary.update(summary)
    run.finish()


# ---------------------------------------------------------------------------- model artifacts
def checkpoint_argument(value) -> Path:
    """A ``--ckpt`` value: a file, or ``wandb:ENTITY/PROJECT/NAME:ALIAS`` (downloaded first)."""
    text = str(value)
    return download_model_artifact(text) if text.startswith(CHECKPOINT_PREFIX) else Path(value)


def download_model_artifact(spec: str, root: Optional[Path] = None) -> Path:
    """``wandb:ENTITY/PROJECT/NAME:ALIAS`` (a ``model`` artifact logged by ``--log-checkpoint``) ->
    the downloaded ``.ckpt`` file. Needs W&B online; otherwise one clear error."""
    ref = spec[len(CHECKPOINT_PREFIX):]
    if ":" not in ref or ref.count("/") > 2:
        raise ConfigError(f"--ckpt {spec}: expected wandb:ENTITY/PROJECT/NAME:ALIAS, e.g. wandb:me/drivseg/model-1a2b3c4d:best")
    mode = wandb_mode()
    if mode != "online":
        raise ConfigError(
            f"--ckpt {spec}: downloading a W&B artifact needs W&B online, but W&B is {mode} "
            f"({'WANDB_MODE is set' if os.environ.get('WANDB_MODE') else 'no credentials: run `wandb login`'}); "
            f"or fetch it on a connected machine with `wandb artifact get {ref}` and pass the .ckpt file"
        )
    import wandb

    try:
        artifact = wandb.Api().artifact(ref, type="model")
        folder = Path(artifact.download(root=None if root is None else str(root)))
    except Exception as err:  # wandb raises CommError / ValueError for unknown names and network errors
        raise ConfigError(f"--ckpt {spec}: cannot download it from W&B ({type(err).__name__}: {err})") from None
    files = sorted(folder.glob("*.ckpt"))
    if not files:
        raise ConfigError(f"--ckpt {spec}: the artifact downloaded to {folder} holds no .ckpt file")
    return files[0]
