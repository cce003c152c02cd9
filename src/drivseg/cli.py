"""Command line: a parser built from the registries; ``configs/default.yaml`` < ``--config`` < flags."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from pytorch_lightning.utilities import rank_zero_only

from drivseg.data import DATASETS
from drivseg.data.dataset import BAD_SAMPLE_MODES
from drivseg.data.taxonomy import TAXONOMIES
from drivseg.errors import ConfigError
from drivseg.data.transforms import augment_path
from drivseg.durations import parse_cadence, parse_duration
from drivseg.paths import configs_dir
from drivseg.sizes import parse_size
from drivseg.losses import LOSSES
from drivseg.models import ARCHS, resolve_encoder_weights
from drivseg.models.smp_models import SMP_ARCHS, default_encoder
from drivseg.module import OPTIMIZERS, SCHEDULERS

DEFAULT_CONFIG = configs_dir() / "default.yaml"
PRECISIONS = ("auto", "32", "16-mixed", "bf16-mixed", "bf16-true", "64")
LOGGERS = ("wandb", "csv", "tensorboard", "none")


def load_yaml(path: Path) -> dict:
    """Read a YAML mapping; fail naming the file when it is missing or not a mapping."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of option: value, found {type(data).__name__}")
    return data


def load_config_file(path: Path, valid: set[str], _seen: tuple[Path, ...] = ()) -> dict:
    """A ``--config`` file with its ``base:`` chain merged in: ``base: other.yaml`` (a path relative
    to the file) supplies every key the file does not set, so a variant of a recipe states only what
    differs from it. ``valid``: the known option names; any other key fails naming its file."""
    path = Path(path)
    if path.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve()))
        raise ConfigError(f"config file {path}: its base: chain loops ({chain}); remove one of the base: keys")
    data = load_yaml(path)
    base = data.pop("base", None)
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown option(s) {unknown}; valid options are the keys of {DEFAULT_CONFIG} "
            "(and base:)"
        )
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"config file {path}: base: must be the path of another YAML file, found {base!r}")
    base_path = Path(base) if Path(base).is_absolute() else path.parent / base
    if not base_path.is_file():
        raise ConfigError(
            f"config file {path}: base: {base} does not exist (looked for {base_path}); base paths are "
            "relative to the file that names them"
        )
    return {**load_config_file(base_path, valid, (*_seen, path.resolve())), **data}


def crop_size(values: Sequence[str] | str | None) -> Optional[list[int]]:
    """``["360", "480"]``, ``"360x480"`` or ``[360, 480]`` -> [360, 480]; none/null -> None."""
    if values is None:
        return None
    text = " ".join(str(v) for v in ([values] if isinstance(values, str) else values))
    if text.strip().lower() in ("none", "null", ""):
        return None
    return list(parse_size(text, "--crop-size"))


def none_or_str(value: Any) -> Optional[str]:
    return None if value is None or str(value).lower() in ("none", "null", "") else str(value)


def none_or_int(value: Any) -> Optional[int]:
    text = none_or_str(value)
    return None if text is None else int(text)


def none_or_float(value: Any) -> Optional[float]:
    text = none_or_str(value)
    return None if text is None else float(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train a semantic segmentation model on a driving dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="YAML file overriding configs/default.yaml (base: FILE inherits another one)")
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=sorted(DATASETS), help="dataset")
    g.add_argument("--data-root", type=none_or_str, help="dataset folder")
    g.add_argument("--num-classes", type=int, help="only for datasets whose label spec cannot say")
    g.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        help="download the dataset into --data-root first (datasets behind a login say what to fetch)",
    )
    g.add_argument(
        "--taxonomy", choices=TAXONOMIES, help="native classes, or the 19 Cityscapes classes (cityscapes, kitti, bdd100k, mapillary)"
    )
    g.add_argument("--crop-size", nargs="+", help="train crop: H W or HxW (none: whole images)")
    g.add_argument("--image-scale", type=float, help="resize inputs by this factor")
    g.add_argument("--scale-range", type=float, nargs=2, help="train scale jitter (min max)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--eval-batch-size", type=int)
    g.add_argument("--num-workers", type=int)
    g.add_argument("--augment", help="augmentation after scale/crop: none | light | default | strong | PATH.yaml")
    g.add_argument("--bad-samples", choices=BAD_SAMPLE_MODES, help="unreadable files: error (end the run) | skip")
    g.add_argument("--check-data", action=argparse.BooleanOptionalAction, help="check the dataset and exit")
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=sorted(ARCHS), help="architecture")
    g.add_argument("--encoder", type=none_or_str, help="SMP encoder name or tu-<timm model>")
    g.add_argument("--encoder-weights", type=none_or_str,
                   help="auto (ImageNet where it loads offline) | none | imagenet | PATH")
    g.add_argument("--aux-weight", type=float, help="weight of auxiliary losses")
    g.add_argument("--channels-last", choices=("auto", "on", "off"), help="NHWC tensors for the network")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the network")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", help=f"spec such as ce, ce+dice, ce:1.0,lovasz:0.5; losses: {', '.join(sorted(LOSSES))}")
    g.add_argument("--class-weights", help="none | median-freq | w0,w1,...")
    g.add_argument("--label-smoothing", type=float)
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=sorted(OPTIMIZERS))
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--scheduler", choices=SCHEDULERS)
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-time", type=none_or_str, help="wall-clock budget of fit: HH:MM:SS, 20m, 2h (the LR schedule follows it)")
    g.add_argument("--val-every", help="validate every N epochs, or every 5m; the last epoch always validates")
    g.add_argument("--grad-clip", type=float, help="gradient norm clip (0: off)")
    g.add_argument("--accumulate-grad-batches", type=int)
    g.add_argument("--precision", choices=PRECISIONS, help="auto: bf16-mixed where bf16 is native, else 32")
    g.add_argument("--ema", type=none_or_float, help="EMA decay of the weights (e.g. 0.999); none: off")
    g.add_argument("--swa-epochs", type=int,
                   help="stochastic weight averaging over the last N epochs, or the last N/epochs of --max-time (0: off)")
    g.add_argument("--swa-lr", type=none_or_float, help="SWA learning rate (default 0.05 * lr)")
    g = p.add_argument_group("hardware")
    g.add_argument("--gpus", type=int, help="N CUDA devices with DDP")
    g.add_argument("--accelerator", help="auto | cpu | gpu | mps")
    g.add_argument("--devices", type=int, help="processes (devices) per node")
    g.add_argument("--strategy", help="auto | ddp | ddp_spawn | fsdp ...")
    g.add_argument("--num-nodes", type=int)
    g.add_argument("--seed", type=int)
    g = p.add_argument_group("logging and outputs")
    g.add_argument("--logger", choices=LOGGERS)
    g.add_argument("--wandb-project", type=none_or_str)
    g.add_argument("--wandb-entity", type=none_or_str)
    g.add_argument("--run-name", type=none_or_str)
    g.add_argument("--output-dir", type=none_or_str, help="run directory (default runs/<run-name>)")
    g.add_argument("--log-images", type=int, help="validation images sent to W&B per epoch")
    g.add_argument("--log-checkpoint", action=argparse.BooleanOptionalAction,
                   help="upload the best checkpoint to W&B as a model artifact")
    g.add_argument("--wandb-group", type=none_or_str, help="W&B run group")
    g.add_argument("--wandb-job-type", type=none_or_str, help="W&B job type")
    g.add_argument("--log-every-n-steps", type=int)
    g.add_argument("--report", action=argparse.BooleanOptionalAction, help="write RUN/report.html at the end")
    g = p.add_argument_group("run control")
    g.add_argument("--resume", type=none_or_str, help="checkpoint to resume from (exact: RNG states and data position too)")
    g.add_argument("--overwrite", action=argparse.BooleanOptionalAction,
                   help="reuse a run directory that holds a run (deletes its checkpoints and results)")
    g.add_argument("--save-every-epoch", action=argparse.BooleanOptionalAction,
                   help="keep checkpoints/epoch-<N>.ckpt after every epoch")
    g.add_argument("--checkpoint-every", type=none_or_str, help="also write last.ckpt this often inside epochs, e.g. 10m")
    g.add_argument("--deterministic", action=argparse.BooleanOptionalAction, help="deterministic algorithms")
    g.add_argument("--detect-anomaly", action=argparse.BooleanOptionalAction, help="autograd anomaly detection")
    g.add_argument("--ddp-timeout", type=none_or_str, help="fail a DDP collective that waits longer (e.g. 10m)")
    g.add_argument("--fast-dev-run", action=argparse.BooleanOptionalAction)
    g.add_argument("--limit-train-batches", type=float)
    g.add_argument("--limit-val-batches", type=float)
    g = p.add_argument_group("cross-validation (set by cv.py)")
    g.add_argument("--folds-file", type=none_or_str, help="folds.csv; with --fold K train on the other folds, validate on K")
    g.add_argument("--fold", type=none_or_int, help="the held-out fold of --folds-file")
    return p


def sweep_style(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Flags as a W&B sweep agent writes them (``${args}``: ``--key=value``, keys as in the sweep
    YAML) -> flags this parser reads. ``--batch_size=8`` and ``--batch-size=8`` are the same flag;
    list values (``--crop_size=[176, 240]``) become separate tokens; booleans ``--flag=True`` /
    ``--flag=False`` become ``--flag`` / ``--no-flag``. Anything else is left for argparse."""
    options = {s: a for a in parser._actions for s in a.option_strings}
    out: list[str] = []
    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            out.append(arg)
            continue
        name, eq, value = arg.partition("=")
        flag = name if name in options else name.replace("_", "-")
        action = options.get(flag)
        if action is None:
            out.append(arg)
        elif not eq:
            out.append(flag)
        elif isinstance(action, argparse.BooleanOptionalAction):
            truth = value.strip().lower()
            if truth not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{arg}: expected {name}=true or {name}=false")
            out.append(flag if truth in ("true", "1", "yes") else "--no-" + flag[2:])
        elif action.nargs not in (None, "?"):
            text = value.strip()
            items = yaml.safe_load(text) if text.startswith("[") and text.endswith("]") else text.replace(",", " ").split()
            out += [flag, *[str(v) for v in items]]
        else:
            out.append(f"{flag}={value}")
    return out


def parse_config(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Two passes: find ``--config``, then parse flags over the merged YAML defaults."""
    parser = build_parser()
    argv = sweep_style(sys.argv[1:] if argv is None else argv, parser)
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config", type=Path)
    known, _ = first.parse_known_args(argv)
    defaults = load_yaml(DEFAULT_CONFIG)
    if known.config is not None:
        defaults.update(load_config_file(known.config, set(defaults)))
    parser.set_defaults(**defaults)
    cfg = parser.parse_args(argv)
    return normalise(cfg, parser)


def normalise(cfg: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Coerce YAML values to the flag types and check values no ``choices`` can express."""
    cfg.crop_size = crop_size(cfg.crop_size)
    cfg.config = None if cfg.config is None else str(cfg.config)
    cfg.precision = str(cfg.precision)
    for key in ("data_root", "encoder", "encoder_weights", "max_time", "resume", "run_name", "output_dir",
                "checkpoint_every", "ddp_timeout", "folds_file", "wandb_group", "wandb_job_type"):
        setattr(cfg, key, none_or_str(getattr(cfg, key)))
    for key in ("ema", "swa_lr"):
        setattr(cfg, key, none_or_float(getattr(cfg, key)))
    cfg.fold = none_or_int(cfg.fold)
    if cfg.arch in SMP_ARCHS and cfg.encoder is None:
        cfg.encoder = default_encoder(cfg.arch)  # explicit in config.yaml, the run name and the normalisation
    if cfg.encoder_weights == "auto" and cfg.arch in ARCHS:
        cfg.encoder_weights, why = resolve_encoder_weights(cfg.arch, cfg.encoder, cfg.encoder_weights)
        if rank_zero_only.rank == 0:  # stdout, like the precision line: stderr is for errors
            print(f"encoder weights {cfg.encoder_weights or 'none'} (auto: {why})")
    cfg.val_every = str(cfg.val_every)
    # argparse checks `choices` only for values given as flags, not for defaults from YAML
    for action in parser._actions:
        value = getattr(cfg, action.dest, None)
        if action.choices is not None and value is not None and value not in action.choices:
            raise ConfigError(
                f"{action.dest} {value!r} (from a config file) is unknown; valid: {', '.join(map(str, action.choices))}"
            )
    # durations and cadences fail here, before any data is read
    for flag, value in (("--max-time", cfg.max_time), ("--checkpoint-every", cfg.checkpoint_every),
                        ("--ddp-timeout", cfg.ddp_timeout)):
        parse_duration(value, flag)
    parse_cadence(cfg.val_every, "--val-every")
    augment_path(cfg.augment)
    if (cfg.folds_file is None) != (cfg.fold is None):
        raise ConfigError("--folds-file and --fold go together (cv.py sets both for each fold)")
    if cfg.ema is not None and not 0.0 < cfg.ema < 1.0:
        raise ConfigError(f"--ema {cfg.ema}: expected a decay between 0 and 1, e.g. 0.999")
    if cfg.ema is not None and cfg.swa_epochs:
        raise ConfigError(f"--ema {cfg.ema} and --swa-epochs {cfg.swa_epochs} both average the weights; choose one")
    if not 0 <= cfg.swa_epochs <= cfg.epochs:
        raise ConfigError(f"--swa-epochs {cfg.swa_epochs}: expected 0 (off) to --epochs ({cfg.epochs}); SWA averages "
                          "the last N of the epochs (of the budget's epochs with --max-time)")
    if cfg.log_checkpoint and cfg.logger != "wandb":
        raise ConfigError(f"--log-checkpoint uploads best.ckpt to W&B; it needs --logger wandb, not --logger {cfg.logger}")
    if cfg.swa_lr is not None and cfg.swa_lr <= 0:
        raise ConfigError(f"--swa-lr {cfg.swa_lr}: expected a positive learning rate (default 0.05 x --lr)")
    return cfg
