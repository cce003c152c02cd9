"""A local leaderboard: every run and CV experiment under a folder, one row each, best first.

Runs are folders with ``results.json`` (train.py), CV experiments folders with ``cv_results.json``
(cv.py; their ``fold-K`` runs are not rows of their own). A row's score is its OOF mIoU ± the std
of its folds for an experiment, its val mIoU for a run, unless ``metric`` names another key of the
results (``test/mIoU``, ``val/IoU/Car``...). Besides arch, encoder and loss, only the config keys
whose values differ between the rows are shown: what distinguishes the rows, not all 60 options.
No W&B account is needed; ``rows_from_wandb`` builds the same rows from the W&B API.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from drivseg.errors import ConfigError

# never worth a column: paths, names, run control, and what has a column of its own
HIDDEN_KEYS = frozenset({
    "arch", "encoder", "loss", "config", "data_root", "output_dir", "run_dir", "run_name", "resume", "overwrite",
    "folds_file", "fold", "wandb_group", "wandb_job_type", "wandb_project", "wandb_entity", "check_data",
    "download", "precision_resolved", "report", "log_images", "log_every_n_steps", "num_workers",
})  # fmt: skip
HEATMAP_ROWS = 10


def find_runs(folder: Path) -> list[tuple[str, Path]]:
    """(kind, folder) of every run (``run``) and CV experiment (``cv``) under ``folder``, sorted;
    nothing inside a CV experiment or a run is listed again, unfinished experiments not at all."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        if "cv_results.json" in files or "results.json" in files:
            found.append(("cv" if "cv_results.json" in files else "run", Path(current)))
            dirs.clear()  # a fold of an experiment is part of its row
        elif "cv_config.yaml" in files:
            dirs.clear()  # an experiment whose folds have not all finished: no row yet, nor its folds
    return found


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} cannot be read ({err}); delete it or re-run what wrote it") from None


def _parameters(results: dict, run_dir: Path) -> Optional[int]:
    """Parameters of the network: recorded by cv.py, else counted from the run's best checkpoint."""
    if results.get("parameters") is not None:
        return int(results["parameters"])
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        return None
    from drivseg.oof import count_parameters

    try:
        return count_parameters(ckpt)
    except ConfigError:
        return None  # a checkpoint this version cannot rebuild: the row stays, without a size


def load_row(kind: str, run_dir: Path, name: str) -> dict:
    """One leaderboard row: name, kind, config, the flat results, and the fields every row has."""
    if kind == "cv":
        results = _read_json(run_dir / "cv_results.json")
        config = dict(results.get("config") or {}) | {"folds": results.get("folds"), "cv_pool": results.get("cv_pool")}
    else:
        results = _read_json(run_dir / "results.json")
        path = run_dir / "config.yaml"
        config = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    return make_row(name, kind, config, results, _parameters(results, run_dir))


def make_row(name: str, kind: str, config: dict, results: dict, parameters: Optional[int]) -> dict:
    """A row from a config and flat results (``oof/...`` for CV experiments, ``val/...`` for runs)."""
    prefix = "oof" if kind == "cv" else "val"
    return {
        "name": name, "kind": kind, "config": config, "results": results, "prefix": prefix,
        "score": results.get(f"{prefix}/mIoU"), "std": results.get("folds/mIoU_std") if kind == "cv" else None,
        "test": results.get("test/mIoU"), "train_seconds": results.get("train_seconds"), "parameters": parameters,
    }  # fmt: skip


def collect_rows(folder: Path) -> list[dict]:
    """Every run and experiment under ``folder``, named by their path relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; give the folder holding the run directories (e.g. runs/)")
    rows = [load_row(kind, d, "." if d == folder else d.relative_to(folder).as_posix()) for kind, d in find_runs(folder)]
    if not rows:
        raise ConfigError(f"no results.json or cv_results.json under {folder}: no finished run there")
    return rows


def differing_keys(rows: Sequence[dict]) -> list[str]:
    """Config keys whose values are not the same in every row (a missing key counts as a value)."""
    keys = sorted({k for r in rows for k in r["config"]} - HIDDEN_KEYS)

    def shown(row: dict, key: str) -> str:
        return json.dumps(row["config"][key], sort_keys=True, default=str) if key in row["config"] else "<missing>"

    return [k for k in keys if len({shown(r, k) for r in rows}) > 1]


def metric_value(row: dict, metric: Optional[str]) -> Optional[float]:
    """The sort key: the row's score (OOF or val mIoU) or the value of ``metric`` in its results."""
    value = row["score"] if metric is None else row["results"].get(metric)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def sort_rows(rows: Sequence[dict], metric: Optional[str]) -> list[dict]:
    """Best first; rows without the metric last. Losses and times are better low."""
    lower = metric is not None and ("loss" in metric or "seconds" in metric)
    present = [r for r in rows if metric_value(r, metric) is not None]
    absent = [r for r in rows if metric_value(r, metric) is None]
    return sorted(present, key=lambda r: metric_value(r, metric), reverse=not lower) + absent


def class_names(rows: Sequence[dict]) -> list[str]:
    """Classes in the order of the first row that has per-class IoU."""
    for r in rows:
        names = [k.split("/", 2)[2] for k in r["results"] if k.startswith(f"{r['prefix']}/IoU/")]
        if names:
            return list(r["results"].get("class_names") or names)
    return []


def _pct(value: Any) -> str:
    return "" if value is None else f"{100 * float(value):.1f}"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)


def table(rows: Sequence[dict], metric: Optional[str]) -> tuple[list[str], list[list[str]], list[list[Any]], set]:
    """Header, printed cells, raw CSV values (with their header) of the sorted rows, and the
    indices of the numeric columns."""
    keys = differing_keys(rows)
    names = class_names(rows)
    score = "mIoU % (OOF ± folds / val)"
    header = ["#", "name", "arch", "encoder", "loss", *keys, score, *([metric] if metric else []), "test mIoU %",
              "train time", "params (M)", *names]
    cells, raw = [], []
    for rank, r in enumerate(rows, start=1):
        cfg, res = r["config"], r["results"]
        shown = _pct(r["score"]) + (f" ± {100 * r['std']:.1f}" if r["std"] is not None else "")
        if r["kind"] == "cv" and r["score"] is not None:
            shown += " (OOF)"
        ious = [res.get(f"{r['prefix']}/IoU/{n}") for n in names]
        extra = [metric_value(r, metric)] if metric else []
        params = None if r["parameters"] is None else r["parameters"] / 1e6
        cells.append([str(rank), r["name"], _value(cfg.get("arch")), _value(cfg.get("encoder")), _value(cfg.get("loss")),
                      *(_value(cfg.get(k)) for k in keys), shown, *(_value(v) for v in extra), _pct(r["test"]),
                      _duration(r["train_seconds"]), "" if params is None else f"{params:.2f}", *(_pct(v) for v in ious)])
        raw.append([rank, r["name"], cfg.get("arch"), cfg.get("encoder"), cfg.get("loss"), *(cfg.get(k) for k in keys),
                    r["score"], *extra, r["test"], r["train_seconds"], r["parameters"], *ious])
    csv_header = [*header[: 5 + len(keys)], "score", *([metric] if metric else []), "test_mIoU", "train_seconds",
                  "parameters", *(f"IoU/{n}" for n in names)]
    first_score = 5 + len(keys)
    numeric = {0, *range(first_score, len(header))} - {header.index("train time")}
    return header, cells, [csv_header, *raw], numeric


def markdown(header: Sequence[str], cells: Sequence[Sequence[str]], numeric: set = frozenset()) -> str:
    """A GitHub markdown table; the ``numeric`` columns right-aligned."""
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def plot(rows: Sequence[dict], path: Path) -> None:
    """Left: score against train time, one labelled point per row. Right: per-class IoU of the top rows."""
    import numpy as np
    from matplotlib.figure import Figure

    names = class_names(rows)
    top = [r for r in rows if r["score"] is not None][:HEATMAP_ROWS]
    fig = Figure(figsize=(7 + 0.45 * max(len(names), 1), 1.5 + max(4, 0.4 * len(top))))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    for rank, r in enumerate(rows, start=1):
        if r["score"] is None or r["train_seconds"] is None:
            continue
        marker = "s" if r["kind"] == "cv" else "o"
        left.errorbar(r["train_seconds"] / 60, 100 * r["score"], yerr=None if r["std"] is None else 100 * r["std"],
                      fmt=marker, color="tab:blue" if r["kind"] == "run" else "tab:orange", capsize=3)
        left.annotate(str(rank), (r["train_seconds"] / 60, 100 * r["score"]), textcoords="offset points",
                      xytext=(4, 4), fontsize=8)
    left.set_xlabel("train time (min)")
    left.set_ylabel("mIoU (%): OOF ± folds (squares) / val (dots)")
    left.set_title("score against train time (labels: rank)")
    values = np.array([[np.nan if r["results"].get(f"{r['prefix']}/IoU/{n}") is None
                        else 100 * r["results"][f"{r['prefix']}/IoU/{n}"] for n in names] for r in top]).reshape(len(top), len(names))
    if top and names:
        image = right.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        fig.colorbar(image, ax=right, fraction=0.04, pad=0.02)
        right.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        right.set_yticks(range(len(top)), [f"{i + 1}. {r['name']}"[:28] for i, r in enumerate(top)], fontsize=8)
        for i in range(len(top)):
            for j in range(len(names)):
                if not np.isnan(values[i, j]):
                    right.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=7,
                               color="white" if values[i, j] < 50 else "black")
    right.set_title(f"per-class IoU (%) of the top {len(top)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render(rows: Sequence[dict], metric: Optional[str], folder: Optional[Path], write: bool) -> str:
    """Sort, print-ready markdown; with ``write`` also leaderboard.md / .csv / .png in ``folder``."""
    rows = sort_rows(rows, metric)
    header, cells, raw, numeric = table(rows, metric)
    text = markdown(header, cells, numeric)
    if write and folder is not None:
        (folder / "leaderboard.md").write_text(text + "\n")
        with open(folder / "leaderboard.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(raw)
        plot(rows, folder / "leaderboard.png")
    return text


def leaderboard(folder: Path, metric: Optional[str] = None, write: bool = True) -> str:
    """The markdown leaderboard of every run and CV experiment under ``folder``; with ``write``
    also ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` in ``folder``."""
    return render(collect_rows(Path(folder)), metric, Path(folder), write)


def rows_from_wandb(path: str, api: Any = None) -> list[dict]:
    """Rows from the W&B runs of ``ENTITY/PROJECT``: plain runs and cv.py summary runs (fold runs
    are part of their experiment's summary)."""
    if api is None:
        try:
            import wandb

            api = wandb.Api(timeout=30)
        except Exception as err:  # no credentials, no network: the API raises several types
            raise ConfigError(f"--wandb {path}: the W&B API is not reachable ({err}); log in with `wandb login`, "
                              "or leave out --wandb to read the local run folders") from None
    rows = []
    for run in api.runs(path):
        job = getattr(run, "job_type", None) or ""
        if job.startswith("fold-"):
            continue
        summary = {k: v for k, v in dict(run.summary).items() if not k.startswith("_")}
        config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
        kind = "cv" if "oof/mIoU" in summary else "run"
        rows.append(make_row(run.name, kind, config, summary, summary.get("parameters")))
    if not rows:
        raise ConfigError(f"--wandb {path}: no runs found")
    return rows
