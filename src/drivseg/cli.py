"""Command line: a parser built from the registries; ``configs/default.yaml`` < ``--config`` < flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from drivseg.data import DATASETS
from drivseg.data.taxonomy import TAXONOMIES
from drivseg.errors import ConfigError
from drivseg.sizes import parse_size
from drivseg.losses import LOSSES
from drivseg.models import ARCHS
from drivseg.module import OPTIMIZERS, SCHEDULERS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
PRECISIONS = ("32", "16-mixed", "bf16-mixed", "bf16-true", "64")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train a semantic segmentation model on a driving dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="YAML file overriding configs/default.yaml")
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
    g.add_argument("--check-data", action=argparse.BooleanOptionalAction, help="check the dataset and exit")
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=sorted(ARCHS), help="architecture")
    g.add_argument("--encoder", type=none_or_str, help="SMP encoder name or tu-<timm model>")
    g.add_argument("--encoder-weights", type=none_or_str, help="none | imagenet | PATH")
    g.add_argument("--aux-weight", type=float, help="weight of auxiliary losses")
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
    g.add_argument("--max-time", type=none_or_str, help="wall-clock training budget HH:MM:SS")
    g.add_argument("--grad-clip", type=float, help="gradient norm clip (0: off)")
    g.add_argument("--accumulate-grad-batches", type=int)
    g.add_argument("--precision", choices=PRECISIONS)
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
    g = p.add_argument_group("run control")
    g.add_argument("--resume", type=none_or_str, help="checkpoint to resume from")
    g.add_argument("--fast-dev-run", action=argparse.BooleanOptionalAction)
    g.add_argument("--limit-train-batches", type=float)
    g.add_argument("--limit-val-batches", type=float)
    return p


def parse_config(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Two passes: find ``--config``, then parse flags over the merged YAML defaults."""
    parser = build_parser()
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config", type=Path)
    known, _ = first.parse_known_args(argv)
    defaults = load_yaml(DEFAULT_CONFIG)
    if known.config is not None:
        overrides = load_yaml(known.config)
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise ConfigError(
                f"config file {known.config}: unknown option(s) {unknown}; valid options are the keys "
                f"of {DEFAULT_CONFIG.relative_to(REPO_ROOT)}"
            )
        defaults.update(overrides)
    parser.set_defaults(**defaults)
    cfg = parser.parse_args(argv)
    return normalise(cfg, parser)


def normalise(cfg: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Coerce YAML values to the flag types and check values no ``choices`` can express."""
    cfg.crop_size = crop_size(cfg.crop_size)
    cfg.config = None if cfg.config is None else str(cfg.config)
    cfg.precision = str(cfg.precision)
    for key in ("data_root", "encoder", "encoder_weights", "max_time", "resume", "run_name", "output_dir"):
        setattr(cfg, key, none_or_str(getattr(cfg, key)))
    # argparse checks `choices` only for values given as flags, not for defaults from YAML
    for action in parser._actions:
        value = getattr(cfg, action.dest, None)
        if action.choices is not None and value is not None and value not in action.choices:
            raise ConfigError(
                f"{action.dest} {value!r} (from a config file) is unknown; valid: {', '.join(map(str, action.choices))}"
            )
    if cfg.max_time is not None and not re.fullmatch(r"\d+:\d{2}:\d{2}", cfg.max_time):
        raise ConfigError(f"--max-time {cfg.max_time!r}: expected HH:MM:SS, e.g. 00:30:00")
    return cfg
