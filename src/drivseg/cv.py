"""K-fold cross-validation of a train.py configuration: frozen folds, one run per fold, OOF scores.

    python cv.py --config configs/experiments/camvid_fpn.yaml --data-root DIR --folds 5
    python cv.py --config ... --data-root DIR --fold 2      # only fold 2 (SLURM array, another GPU)
    python cv.py --config ... --data-root DIR --collect     # score the experiment

An experiment is a folder: ``folds.csv`` (written once, reused), ``fold-K/`` (a normal train.py run
directory each), ``oof/`` (+ ``oof_probs/``) and, once every fold has finished, ``cv_results.json``.
Running the same command again skips finished folds, resumes an interrupted one from its
``last.ckpt`` and refuses changed settings (``--overwrite`` retrains instead). Folds train inside
this process (``train.main``), one after another; a fold with several processes (DDP) runs as a
``python train.py`` child process.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
import yaml

from drivseg.cli import parse_config
from drivseg.paths import REPO_ROOT
from drivseg.data import get_source
from drivseg.data.datamodule import resolve_root
from drivseg.data.download import download_for
from drivseg.data.source import DatasetSource
from drivseg.data.taxonomy import apply_taxonomy
from drivseg.errors import ConfigError
from drivseg.experiment import RUN_NAME_ENV
from drivseg.folds import (
    POOLS,
    FoldRow,
    balance_table,
    check_matches,
    class_pixel_counts,
    fold_count,
    make_folds,
    oof_names,
    plot_balance,
    pool_name,
    read_folds,
    write_folds,
)
from drivseg.oof import fold_checkpoint, predict_heldout, results_table, score_experiment
from drivseg.results import write_results
from drivseg.run_dir import holds_a_run

TrainMain = Callable[[Sequence[str]], int]
DEFAULT_FOLDS = 5
# settings that may differ between the folds of one experiment: machine, paths, logging
PER_MACHINE_KEYS = frozenset({
    "config", "data_root", "download", "num_workers", "eval_batch_size", "gpus", "accelerator", "devices",
    "strategy", "num_nodes", "precision_resolved", "logger", "wandb_project", "wandb_entity", "wandb_group",
    "wandb_job_type", "run_name", "output_dir", "run_dir", "log_images", "log_every_n_steps", "log_checkpoint",
    "report", "resume", "overwrite", "checkpoint_every", "ddp_timeout", "folds_file", "fold", "check_data",
    "save_every_epoch",
})  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cv.py", description="K-fold cross-validation of a train.py configuration.", allow_abbrev=False,
        epilog="Every other flag is a train.py flag (python train.py --help), passed to every fold.",
    )  # fmt: skip
    p.add_argument("--folds", type=int, help=f"number of folds (default {DEFAULT_FOLDS}, or the folds file's)")
    p.add_argument("--fold", type=int, action="append", help="run only fold K (repeatable); default: every unfinished fold")
    p.add_argument("--collect", action="store_true", help="score the experiment (every fold must have finished)")
    p.add_argument("--cv-pool", choices=sorted(POOLS), help="splits cut into folds (default train+val); test never is")
    p.add_argument("--group-frames", default="auto",
                   help="cut sequences longer than N frames into contiguous blocks of at most N (0: never; "
                        "auto: about 4 groups per fold)")
    p.add_argument("--folds-file", type=Path, help="reuse another experiment's folds.csv (identical folds)")
    p.add_argument("--save-oof-probs", action="store_true", help="also write RUN/oof_probs/<stem>.npz (float16)")
    p.add_argument("--output-dir", type=Path, help="experiment folder (default runs/cv-<config or data-arch>)")
    p.add_argument("--run-name", help="experiment name (default: the folder's name); the W&B group")
    p.add_argument("--overwrite", action="store_true", help="retrain the folds this command runs (folds.csv stays)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="for OOF and ensemble inference")
    p.add_argument("--wandb-group", help="W&B group of the folds (default: the experiment name)")
    p.add_argument("--resume", help=argparse.SUPPRESS)
    p.add_argument("--wandb-job-type", help=argparse.SUPPRESS)
    return p


@dataclass
class Experiment:
    """A CV experiment folder and what every fold shares."""

    dir: Path
    name: str
    cfg: argparse.Namespace  # the resolved train.py config, without fold settings
    train_argv: list[str]
    source: DatasetSource
    root: Path
    command: str  # the cv.py command, for messages that say what to run

    @property
    def folds_csv(self) -> Path:
        return self.dir / "folds.csv"

    def fold_dir(self, k: int) -> Path:
        return self.dir / f"fold-{k}"

    @property
    def oof_dir(self) -> Path:
        return self.dir / "oof"

    @property
    def probs_dir(self) -> Path:
        return self.dir / "oof_probs"

    def device(self, choice: str) -> torch.device:
        if choice == "auto":
            gpu = torch.cuda.is_available() and self.cfg.accelerator != "cpu"
            return torch.device("cuda" if gpu else "cpu")
        if choice == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda but no CUDA device is available; use --device cpu")
        return torch.device(choice)


def default_dir(cfg: argparse.Namespace) -> Path:
    """``runs/cv-<config stem>`` or ``runs/cv-<data>-<arch>-<encoder>``: no timestamp, so the same
    command finds its experiment again (re-runs, ``--fold K`` jobs, ``--collect``)."""
    if cfg.config:
        return Path("runs") / f"cv-{Path(cfg.config).stem}"
    return Path("runs") / f"cv-{cfg.data}-{cfg.arch}-{(cfg.encoder or 'default').replace('/', '_')}"


def config_differences(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for the settings (not machine, path or logging keys) that differ."""
    keys = sorted((set(old) | set(new)) - PER_MACHINE_KEYS)
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def open_experiment(args: argparse.Namespace, train_argv: list[str], argv: Sequence[str]) -> Experiment:
    """Check the flags, find the data (generate it when needed) and the experiment folder."""
    if args.resume:
        raise ConfigError("cv.py resumes an interrupted fold by itself from its last.ckpt: run the same cv.py command again")
    if args.wandb_job_type:
        raise ConfigError("cv.py sets --wandb-job-type fold-K for each fold itself; drop --wandb-job-type")
    cfg = parse_config(train_argv)
    if cfg.check_data:
        raise ConfigError("--check-data checks a dataset without training: run it with train.py")
    source = get_source(cfg.data, cfg.data_root)
    if cfg.download:
        download_for(source, cfg.data_root)
    source = apply_taxonomy(source, cfg.taxonomy)
    root = resolve_root(source, cfg.data_root)
    if source.prepare is not None:
        source.prepare(root)  # the synthetic scenes are generated here, before the folds read them
    exp_dir = args.output_dir or default_dir(cfg)
    name = args.run_name or exp_dir.resolve().name
    return Experiment(exp_dir, name, cfg, train_argv, source, root, base_command(argv))


def base_command(argv: Sequence[str]) -> str:
    """The cv.py command without ``--fold K`` / ``--collect``: what messages add their folds to."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--fold":
            skip = True
        elif arg != "--collect" and not arg.startswith("--fold="):
            kept.append(arg)
    return shlex.join(["python", "cv.py", *kept])


def check_settings(exp: Experiment, overwrite: bool, cv_settings: dict) -> None:
    """The first run writes ``cv_config.yaml``; later runs must use the same settings (or ``--overwrite``)."""
    path = exp.dir / "cv_config.yaml"
    # through YAML, as the file and the folds' config.yaml hold it (tuples become lists)
    new = yaml.safe_load(yaml.safe_dump({"train": vars(exp.cfg), "cv": cv_settings}, sort_keys=False))
    if path.is_file() and not overwrite:
        old = yaml.safe_load(path.read_text()) or {}
        changed = config_differences(old.get("train", {}), new["train"])
        if changed:
            raise ConfigError(f"experiment {exp.dir} was started with other settings ({'; '.join(changed)}); "
                              "use another --output-dir, or --overwrite to retrain the folds with the new ones")
        return
    exp.dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(new, sort_keys=False))


def experiment_config(exp: Experiment) -> dict:
    """The train config recorded in ``cv_config.yaml`` (the one every finished fold must match)."""
    return (yaml.safe_load((exp.dir / "cv_config.yaml").read_text()) or {}).get("train", {})


def ensure_folds(exp: Experiment, args: argparse.Namespace) -> tuple[list[FoldRow], dict]:
    """``RUN/folds.csv``: reused when present, copied from ``--folds-file``, else made and printed.
    Returns the rows and the CV settings (folds, pool, group frames) for ``cv_config.yaml``."""
    path = exp.folds_csv
    spec = exp.source.label_spec
    imported = read_folds(args.folds_file) if args.folds_file else None
    if path.is_file():
        rows = read_folds(path)
        if imported is not None and sorted(imported, key=lambda r: r.image) != sorted(rows, key=lambda r: r.image):
            raise ConfigError(f"{path} differs from --folds-file {args.folds_file}; an experiment keeps its folds: "
                              "use another --output-dir to run on the other folds")
        origin = f"reusing {path}"
    elif imported is not None:
        rows, origin = imported, f"folds from {args.folds_file}"
    else:
        folds = args.folds or DEFAULT_FOLDS
        frames = None if str(args.group_frames) == "auto" else parse_frames(args.group_frames)
        rows, counts, block = make_folds(exp.source, exp.root, folds, args.cv_pool or "train+val", frames)
        write_folds(path, rows)
        sequences = len({exp.source.sequence_of(Path(r.image)) for r in rows})
        cut = "never cut" if block <= 0 else f"sequences longer than {block} frames cut into contiguous blocks"
        print(f"folds: {folds} folds of {len(rows)} images in {len({r.group for r in rows})} groups "
              f"({sequences} sequences; {cut}, --group-frames {block}) -> {path}")
        print(balance_table(rows, counts, spec.class_names))
        plot_balance(rows, counts, spec.class_names, exp.dir / "folds_balance.png")
        print(f"class shares per fold: {exp.dir / 'folds_balance.png'}")
        return rows, {"folds": folds, "pool": args.cv_pool or "train+val", "group_frames": block}
    pool = pool_name(check_matches(rows, exp.source, exp.root, path if path.is_file() else args.folds_file))
    count = fold_count(rows)
    if args.folds is not None and args.folds != count:
        raise ConfigError(f"--folds {args.folds} but {origin.split()[-1]} has {count} folds; drop --folds to use them")
    if args.cv_pool is not None and args.cv_pool != pool:
        raise ConfigError(f"--cv-pool {args.cv_pool} but {origin.split()[-1]} pools {pool}; drop --cv-pool to use it")
    if not path.is_file():
        write_folds(path, rows)
        counts = class_pixel_counts([(exp.root / r.image, exp.root / r.mask) for r in rows], exp.source)
        print(f"{origin}: {count} folds of {len(rows)} {pool} images -> {path}")
        print(balance_table(rows, counts, spec.class_names))
        plot_balance(rows, counts, spec.class_names, exp.dir / "folds_balance.png")
    else:
        print(f"{origin}: {count} folds of {len(rows)} {pool} images")
    return rows, {"folds": count, "pool": pool, "group_frames": None if imported is None else f"from {args.folds_file}"}


def parse_frames(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--group-frames {text!r}: expected auto, 0 (never cut) or a number of frames") from None
    if value < 0:
        raise ConfigError(f"--group-frames {value}: expected auto, 0 (never cut) or a positive number of frames")
    return value


def fold_state(exp: Experiment, k: int) -> str:
    """``done`` (results.json with the experiment's settings), ``stale`` (other settings),
    ``partial`` (checkpoints, no results: interrupted) or ``new``."""
    fold_dir = exp.fold_dir(k)
    if (fold_dir / "results.json").is_file():
        trained = yaml.safe_load((fold_dir / "config.yaml").read_text()) if (fold_dir / "config.yaml").is_file() else {}
        return "stale" if config_differences(trained, experiment_config(exp)) else "done"
    return "partial" if holds_a_run(fold_dir) else "new"


@contextmanager
def own_run_name() -> Iterator[None]:
    """``train.run_name`` keeps the run name in the environment (for DDP processes); the next fold
    trained in this process must not inherit it."""
    saved = os.environ.get(RUN_NAME_ENV)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(RUN_NAME_ENV, None)
        else:
            os.environ[RUN_NAME_ENV] = saved


def several_processes(cfg: argparse.Namespace) -> bool:
    """True when a fold trains with DDP: Lightning's launcher starts the other processes by
    re-running the script, and a process group cannot be set up twice in one process."""
    return (cfg.gpus or 0) > 1 or cfg.devices > 1 or cfg.num_nodes > 1


def train_fold(argv: Sequence[str], cfg: argparse.Namespace, train_main: TrainMain) -> int:
    """``train.main(argv)`` in this process, or ``python train.py ARGV`` in a child process for DDP."""
    if several_processes(cfg):
        return subprocess.run([sys.executable, "-m", "drivseg.scripts.train", *argv]).returncode
    with own_run_name():
        return train_main(argv)


def fold_argv(exp: Experiment, k: int, state: str, overwrite: bool, group: str) -> list[str]:
    """The train.py arguments of fold ``k``: the user's flags plus the fold's own."""
    argv = [*exp.train_argv, "--folds-file", str(exp.folds_csv), "--fold", str(k),
            "--output-dir", str(exp.fold_dir(k)), "--run-name", f"{exp.name}-fold-{k}",
            "--wandb-group", group, "--wandb-job-type", f"fold-{k}"]  # fmt: skip
    last = exp.fold_dir(k) / "checkpoints" / "last.ckpt"
    if overwrite or state == "stale":
        argv.append("--overwrite")
    elif state == "partial":
        argv += ["--resume", str(last)] if last.is_file() else ["--overwrite"]
    return argv


def fold_pairs(exp: Experiment, rows: Sequence[FoldRow], k: int) -> tuple[list, list[str]]:
    """The held-out (image, mask) pairs of fold ``k`` and their OOF file stems."""
    names = oof_names(rows)
    held = [r for r in rows if r.fold == k]
    return [(exp.root / r.image, exp.root / r.mask) for r in held], [names[r.image] for r in held]


def ensure_oof(exp: Experiment, rows: Sequence[FoldRow], k: int, probs: bool, device: torch.device,
               fresh: bool = False) -> int:
    """Predict fold ``k``'s held-out images that have no OOF mask (or probabilities) yet."""
    pairs, names = fold_pairs(exp, rows, k)
    return predict_heldout(fold_checkpoint(exp.fold_dir(k)), pairs, names, exp.source, exp.oof_dir,
                           exp.probs_dir if probs else None, device, exp.cfg.num_workers, fresh)


def run_fold(exp: Experiment, rows: Sequence[FoldRow], k: int, args: argparse.Namespace, train_main: TrainMain) -> int:
    """Train fold ``k`` (skip it when finished), then predict its held-out images."""
    state = fold_state(exp, k)
    device = exp.device(args.device)
    count = fold_count(rows)
    if state == "done" and not args.overwrite:
        predicted = ensure_oof(exp, rows, k, args.save_oof_probs, device)
        print(f"fold {k}/{count}: finished earlier, skipped" + (f" ({predicted} OOF images predicted)" if predicted else ""))
        return 0
    argv = fold_argv(exp, k, state, args.overwrite, args.wandb_group or exp.name)
    print(f"fold {k}/{count} ({state}): python train.py {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    code = train_fold(argv, exp.cfg, train_main)
    if code != 0:
        return code
    predicted = ensure_oof(exp, rows, k, args.save_oof_probs, device, fresh=True)
    info = {"fold": k, "wall_seconds": round(time.perf_counter() - start, 2), "oof_images": predicted,
            "oof": fold_pairs(exp, rows, k)[1]}
    (exp.fold_dir(k) / "cv_fold.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"fold {k}/{count}: {predicted} OOF images -> {exp.oof_dir}")
    return 0


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """cv.py's own flags, and the train.py flags every fold gets."""
    return build_parser().parse_known_args(list(argv))


def main(argv: Optional[Sequence[str]], train_main: TrainMain) -> int:
    """Run the folds this command asks for, then score the experiment when every fold has finished."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, train_argv = parse_args(argv)
    exp = open_experiment(args, train_argv, argv)
    exp.dir.mkdir(parents=True, exist_ok=True)
    rows, settings = ensure_folds(exp, args)
    check_settings(exp, args.overwrite, settings)
    count = fold_count(rows)
    wanted = sorted(set(args.fold)) if args.fold else ([] if args.collect else list(range(count)))
    bad = [k for k in wanted if not 0 <= k < count]
    if bad:
        raise ConfigError(f"--fold {bad[0]}: {exp.folds_csv} has folds 0..{count - 1}")
    for k in wanted:
        code = run_fold(exp, rows, k, args, train_main)
        if code != 0:
            return code
    states = {k: fold_state(exp, k) for k in range(count)}
    unfinished = [k for k, s in states.items() if s != "done"]
    if unfinished:
        todo = " ".join(f"--fold {k}" for k in unfinished)
        message = (f"folds {unfinished} of {exp.dir} have not finished ({', '.join(states[k] for k in unfinished)}); "
                   f"run {exp.command} {todo}")
        if args.collect:
            raise ConfigError(message)
        print(message)
        return 0
    collect(exp, rows, args)
    return 0


def git_commit() -> Optional[str]:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect(exp: Experiment, rows: Sequence[FoldRow], args: argparse.Namespace) -> dict:
    """Score the finished experiment: ``cv_results.json``, the printed table, the W&B summary run."""
    device = exp.device(args.device)
    for k in range(fold_count(rows)):  # folds trained on other machines may have left no OOF here
        ensure_oof(exp, rows, k, args.save_oof_probs, device)
    print(f"scoring {exp.dir}: OOF masks of {len(rows)} images, K-fold ensemble on the splits outside the pool")
    results = score_experiment(rows, exp.source, exp.root, exp.dir, device, exp.cfg.num_workers)
    settings = (yaml.safe_load((exp.dir / "cv_config.yaml").read_text()) or {}).get("cv", {})
    results |= {
        "experiment": exp.name, "run_dir": str(exp.dir), "config": experiment_config(exp),
        "group_frames": settings.get("group_frames"), "seed": exp.cfg.seed, "git_commit": git_commit(),
        "command": exp.command,
    }  # fmt: skip
    write_results(exp.dir / "cv_results.json", results)
    print(results_table(results))
    print(f"Results in {exp.dir / 'cv_results.json'}")
    if exp.cfg.logger == "wandb":
        from drivseg.loggers import log_summary_run

        numbers = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        log_summary_run(exp.dir, f"{exp.name}-cv", exp.cfg.wandb_project, exp.cfg.wandb_entity, numbers,
                        group=args.wandb_group or exp.name, job_type="summary",
                        config=results["config"] | {"folds": results["folds"], "cv_pool": results["cv_pool"]})
    return results
