"""One self-contained HTML page per run: config, curves, per-class IoU, confusion matrix, samples, timings.

    python report.py runs/camvid-unet-resnet18-20240101-120000     # -> RUN/report.html

Every input is optional, so the page also works for older runs; a missing one gives a short note
in its section, never an exception:

- ``config.yaml`` (the resolved config) and ``results.json`` (final metrics, timings);
- curves from ``history.csv``, else from the CSV logger's ``csv/metrics.csv``;
- the confusion matrix from ``val_confusion.csv``, else computed by scoring the best checkpoint on
  the val split of the dataset named in ``config.yaml``;
- the best and worst validation images (per-image mIoU) from that same scoring pass.

Images are PNGs embedded as base64 data URIs and the CSS is inline; there is no JavaScript, so the
file opens offline in any browser and can be attached to an issue or a mail. Section builders are
plain functions (inputs in, ``Section`` out) so other pages, such as a cross-validation summary, can
reuse them.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure  # draws to memory without pyplot's global state or a display
from matplotlib.ticker import MaxNLocator
from PIL import Image

from drivseg.data import get_source
from drivseg.paths import configs_dir
from drivseg.data.datamodule import resolve_root
from drivseg.data.dataset import SegmentationDataset
from drivseg.data.label_spec import IGNORE_INDEX, LabelSpec
from drivseg.data.taxonomy import apply_taxonomy
from drivseg.errors import ConfigError, DataError
from drivseg.evaluation import iou_per_class, plot_confusion, plot_iou, read_confusion_csv
from drivseg.inference import member_from_checkpoint
from drivseg.module import class_ids

REPORT_FILE = "report.html"
DEFAULTS = configs_dir() / "default.yaml"
SECTION_IDS = ("config", "curves", "iou", "confusion", "samples", "timings")
SAMPLE_WIDTH = 320  # pixels per panel: enough to judge a mask, small enough to mail the file

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #4a78b0; padding-bottom: .2em; margin-top: 2em; }
nav a { margin-right: 1em; } .summary { font-size: 1.1em; }
.note { color: #8a5a00; background: #fff6e0; padding: .5em; }
table { border-collapse: collapse; }
td, th { padding: .15em .8em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tr.changed td { font-weight: bold; }
img { max-width: 100%; } img.sample { width: 320px; image-rendering: pixelated; }
figure { display: inline-block; margin: .3em; } figcaption { font-size: .85em; color: #555; }
.columns { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
.legend span { display: inline-block; margin: .1em .6em .1em 0; }
.swatch { width: 1em; height: 1em; vertical-align: middle; border: 1px solid #999; }
"""


@dataclass
class Section:
    """One part of the page: ``id`` is its anchor, ``body`` ready-made HTML."""

    id: str
    title: str
    body: str


@dataclass
class Sample:
    """A validation image with its ground truth and prediction (train ids) and its own mIoU."""

    name: str
    miou: float
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray


@dataclass
class ValScoring:
    """What one pass of the best checkpoint over the val split gives."""

    class_names: list[str]
    matrix: np.ndarray
    spec: LabelSpec
    best: list[Sample] = field(default_factory=list)
    worst: list[Sample] = field(default_factory=list)
    images: int = 0
    scored: int = 0  # images with labelled pixels (the others have no mIoU)
    seconds: float = 0.0


# ---------------------------------------------------------------- inputs


def read_yaml(path: Path) -> Optional[dict]:
    """A YAML mapping, or None when the file is absent."""
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def read_json(path: Path) -> Optional[dict]:
    """A JSON object, or None when the file is absent."""
    return json.loads(path.read_text()) if path.is_file() else None


def read_history(run_dir: Path) -> Optional[tuple[list[dict], Path]]:
    """Rows of ``history.csv``, else of the CSV logger's ``csv/metrics.csv``: floats, None when empty."""
    for path in (run_dir / "history.csv", run_dir / "csv" / "metrics.csv"):
        if path.is_file():
            with open(path, newline="") as f:
                # cells beyond the header (a row appended by a resumed run) land under None: skipped
                rows = [{k: _number(v) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]
            return rows, path
    return None


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def find_best_checkpoint(run_dir: Path, results: Optional[dict]) -> Optional[Path]:
    """results.json's best checkpoint (where it was written, or moved along with the run), else
    ``checkpoints/best.ckpt``; None when there is none."""
    candidates = []
    if results and results.get("best_checkpoint"):
        written = Path(results["best_checkpoint"])
        candidates += [written, run_dir / "checkpoints" / written.name]
    candidates.append(run_dir / "checkpoints" / "best.ckpt")
    return next((c for c in candidates if c.is_file()), None)


def score_val_split(
    checkpoint: Path,
    config: Optional[dict],
    samples: int = 3,
    device: str = "cpu",
    data_root: Optional[str] = None,
) -> ValScoring:
    """Run ``checkpoint`` over the val split (resolved like eval.py) and keep the best and worst images.

    Raises ``DrivsegError`` when the data cannot be found; the data is never generated or downloaded.
    """
    model, cfg = member_from_checkpoint(checkpoint)
    config = config or {}
    data = config.get("data") or cfg["data"]
    root_arg = data_root or config.get("data_root")
    taxonomy = config.get("taxonomy") or cfg.get("taxonomy", "native")
    source = apply_taxonomy(get_source(data, root_arg), taxonomy)
    names = list(cfg["class_names"])
    if list(source.label_spec.class_names) != names:
        raise ConfigError(f"--data {data} has other classes than {checkpoint}; cannot score it")
    root = resolve_root(source, root_arg)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    if source.prepare is not None:
        source.prepare(root)  # checks a generated dataset; the folder exists, so nothing is generated
    dataset = SegmentationDataset(source.find_pairs(root, "val"), source)
    model.to(device)
    start = time.perf_counter()
    n = len(names)
    matrix = np.zeros((n, n), dtype=np.int64)
    per_image: list[tuple[float, int]] = []
    for index in range(len(dataset)):
        image, truth = dataset.load(index)
        counts = _confusion(truth, _predict(model, image, device), n)
        matrix += counts
        iou = iou_per_class(counts)
        if np.isfinite(iou).any():  # an image without labelled pixels has no score
            per_image.append((float(np.nanmean(iou)), index))
    per_image.sort(reverse=True)
    best = per_image[:samples]
    worst = per_image[len(best):][::-1][:samples]  # never the same image twice
    # predicting the few kept images again costs less than holding every prediction in memory
    kept = [[_sample(dataset, i, score, model, device) for score, i in group] for group in (best, worst)]
    seconds = time.perf_counter() - start
    return ValScoring(names, matrix, source.label_spec, kept[0], kept[1], len(dataset), len(per_image),
                      seconds)


@torch.inference_mode()
def _predict(model: Callable, image: np.ndarray, device: str) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)  # (1, 3, H, W) in [0, 1]
    return class_ids(model(x))[0].byte().cpu().numpy()


def _confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    valid = truth != IGNORE_INDEX
    return np.bincount(truth[valid].astype(np.int64) * n + pred[valid], minlength=n * n).reshape(n, n)


def _sample(dataset: SegmentationDataset, index: int, score: float, model: Callable, device: str) -> Sample:
    image, truth = dataset.load(index)
    return Sample(dataset.pairs[index][0].name, score, image, truth, _predict(model, image, device))


# ---------------------------------------------------------------- HTML pieces


def png_uri(source) -> str:
    """A matplotlib ``Figure``, an RGB array or a ``plot(file)`` callable -> ``data:image/png;base64,...``."""
    buffer = io.BytesIO()
    if isinstance(source, Figure):
        source.savefig(buffer, format="png", dpi=100)
    elif isinstance(source, np.ndarray):
        Image.fromarray(source).save(buffer, format="PNG")
    else:
        source(buffer)  # e.g. lambda f: plot_iou(iou, miou, f): savefig writes PNG by default
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def img_tag(source, alt: str, css_class: str = "") -> str:
    """An ``<img>`` with the image embedded (see ``png_uri``)."""
    extra = f' class="{css_class}"' if css_class else ""
    return f'<img src="{png_uri(source)}" alt="{html.escape(alt)}"{extra}>'


def note(text: str) -> str:
    """A highlighted paragraph saying why a section is empty or partial."""
    return f'<p class="note">{html.escape(text)}</p>'


def config_section(
    config: Optional[dict],
    defaults: Optional[dict] = None,
    missing: str = "No config.yaml in this run directory.",
) -> Section:
    """The resolved config as a table; values that differ from ``configs/default.yaml`` in bold."""
    if config is None:
        return Section("config", "Configuration", note(missing))
    defaults = defaults or {}
    rows = []
    for key, value in config.items():
        changed = " class=changed" if key in defaults and defaults[key] != value else ""
        cells = f"<td>{html.escape(str(key))}</td><td>{html.escape(json.dumps(value))}</td>"
        rows.append(f"<tr{changed}>{cells}</tr>")
    caption = "<p>Values that differ from configs/default.yaml are in bold.</p>" if defaults else ""
    half = math.ceil(len(rows) / 2) or 1  # two tables side by side instead of one long one
    tables = "".join(f"<table>{''.join(rows[i:i + half])}</table>" for i in range(0, len(rows), half))
    return Section("config", "Configuration", f'{caption}<div class="columns">{tables}</div>')


def curve_series(rows: list[dict], epoch_offset: float = 0.0) -> dict[str, list[tuple[float, float]]]:
    """(x, value) series: losses and val mIoU against the epoch, the learning rate against the step.

    x is the number of epochs completed: history.csv counts from 1, the CSV logger from 0, so its
    rows take ``epoch_offset=1``. The CSV logger also logs the re-validation of the best checkpoint
    after training, as an epoch after the last trained one; it repeats a point already plotted, so
    it is left out.
    """

    def has(row: dict, *keys: Optional[str]) -> bool:
        return all(k is not None and row.get(k) is not None for k in keys)

    train_key = next((k for k in ("train/loss", "train/loss_epoch") if any(has(r, k) for r in rows)), None)
    trained = [r["epoch"] for r in rows if has(r, train_key, "epoch")]
    last_epoch = max(trained) if trained else math.inf
    series: dict[str, list[tuple[float, float]]] = {}
    for label, key in (("train/loss", train_key), ("val/loss", "val/loss"), ("val/mIoU", "val/mIoU")):
        points = [(r["epoch"] + epoch_offset, r[key])
                  for r in rows if has(r, key, "epoch") and r["epoch"] <= last_epoch]
        if points:
            series[label] = points
    lr_key = next((k for k in (rows[0] if rows else {}) if k == "lr" or k.startswith("lr-")), None)
    points = [(r["step"], r[lr_key]) for r in rows if has(r, lr_key, "step")]
    if points:
        series["lr"] = points  # the first parameter group: the others follow the same schedule
    return series


def curves_section(history: Optional[tuple[list[dict], Path]]) -> Section:
    """Train/val loss and val mIoU per epoch (and the learning rate per step when logged)."""
    title = "Training curves"
    if history is None:
        return Section("curves", title, note("No history.csv or csv/metrics.csv (--logger csv writes one)."))
    rows, path = history
    series = curve_series(rows, epoch_offset=1.0 if path.name == "metrics.csv" else 0.0)
    if not any(k in series for k in ("train/loss", "val/loss", "val/mIoU")):
        return Section("curves", title, note(f"{path.name} holds no loss or mIoU values."))
    panels = [("loss", ["train/loss", "val/loss"], "epoch"), ("val mIoU", ["val/mIoU"], "epoch")]
    if "lr" in series:
        panels.append(("learning rate", ["lr"], "step"))
    fig = Figure(figsize=(4.2 * len(panels), 3.2))
    for ax, (name, labels, xlabel) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for label in (lb for lb in labels if lb in series):
            xs, ys = zip(*series[label])
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    text = f"<p>From {html.escape(path.name)}.</p>"
    if "val/mIoU" in series:
        epoch, best = max(series["val/mIoU"], key=lambda p: p[1])
        text += f"<p>Best val mIoU {100 * best:.2f}% at epoch {epoch:g}.</p>"
    return Section("curves", title, text + img_tag(fig, "training curves"))


def iou_section(
    results: Optional[dict], class_names: Optional[Sequence[str]] = None, matrix: Optional[np.ndarray] = None
) -> Section:
    """Bars of ``val/IoU/<class>`` from results.json, else computed from ``matrix``; classes the
    matrix never saw (no ground truth, no prediction) are shown as n/a."""
    title = "Per-class IoU (val)"
    prefix = "val/IoU/"
    iou = {k[len(prefix):]: v for k, v in (results or {}).items() if k.startswith(prefix)}
    miou, pixel_acc = (results or {}).get("val/mIoU"), (results or {}).get("val/pixel_acc")
    source = "results.json"
    has_matrix = matrix is not None and class_names is not None and len(class_names) == len(matrix)
    if not iou and has_matrix:
        values = iou_per_class(matrix)
        iou = dict(zip(class_names, values.tolist()))
        miou = float(np.nanmean(values)) if np.isfinite(values).any() else None
        pixel_acc, source = None, "the confusion matrix below"
    if not iou:
        why = "No val/IoU values in results.json" if results else "No results.json (the run did not finish)"
        return Section("iou", title, note(f"{why}, and no confusion matrix to compute them from."))
    order = [n for n in class_names or [] if n in iou] or sorted(iou)
    unseen = set(np.asarray(class_names)[~np.isfinite(iou_per_class(matrix))]) if has_matrix else set()
    bars = {n: None if n in unseen or iou[n] is None or math.isnan(iou[n]) else iou[n] for n in order}
    text = f"<p>val mIoU {100 * miou:.2f}%" if miou is not None else "<p>"
    text += f", pixel accuracy {100 * pixel_acc:.2f}%" if pixel_acc is not None else ""
    text += f" (best checkpoint, from {source}).</p>"
    return Section("iou", title, text + img_tag(lambda f: plot_iou(bars, miou, f), "per-class IoU"))


def confusion_section(
    class_names: Optional[Sequence[str]], matrix: Optional[np.ndarray], origin: str
) -> Section:
    """The row-normalised confusion matrix (row i: where the pixels of class i went)."""
    title = "Confusion matrix (val)"
    if matrix is None or class_names is None:
        return Section("confusion", title, note(origin))
    image = img_tag(lambda f: plot_confusion(matrix, list(class_names), f), "confusion matrix")
    return Section("confusion", title, f"<p>{html.escape(origin)}</p>{image}")


def samples_section(scoring: Optional[ValScoring], reason: str = "") -> Section:
    """The best and worst validation images: image | ground truth | prediction, with their mIoU."""
    title = "Best and worst validation images"
    if scoring is None:
        return Section("samples", title, note(reason or "No validation images were scored."))
    if not scoring.scored:
        return Section("samples", title, note(f"No labelled pixel in the {scoring.images} val images."))
    if not scoring.best:
        return Section("samples", title, note("No sample images were asked for (samples=0)."))
    spec = scoring.spec
    legend = "".join(
        f'<span><span class="swatch" style="background: rgb{tuple(c)}; display: inline-block"></span> '
        f"{html.escape(n)}</span>"
        for n, c in zip(spec.class_names, spec.palette)
    )
    intro = ("<p>Per-image mIoU over the classes present in the image or its prediction; black in the "
             f"ground truth is void (not scored). {scoring.images} val images scored.</p>")
    parts = [intro, f'<p class="legend">{legend}</p>']
    for heading, group in (("Best", scoring.best), ("Worst", scoring.worst)):
        parts.append(f"<h3>{heading}</h3>")
        for s in group:
            panels = [("image", _shrink(s.image, Image.BILINEAR)),
                      ("ground truth", _shrink(spec.colorize(s.truth))),
                      ("prediction", _shrink(spec.colorize(s.pred)))]
            figures = "".join(f"<figure>{img_tag(a, k, 'sample')}<figcaption>{k}</figcaption></figure>"
                              for k, a in panels)
            parts.append(f"<div><p><b>{html.escape(s.name)}</b>: mIoU {100 * s.miou:.1f}%</p>{figures}</div>")
    return Section("samples", title, "".join(parts))


def _shrink(rgb: np.ndarray, resample: int = Image.NEAREST) -> np.ndarray:
    """At most ``SAMPLE_WIDTH`` wide; masks use nearest so they keep the exact palette colours."""
    h, w = rgb.shape[:2]
    if w <= SAMPLE_WIDTH:
        return rgb
    size = (SAMPLE_WIDTH, max(1, round(h * SAMPLE_WIDTH / w)))
    return np.asarray(Image.fromarray(rgb).resize(size, resample))


def timings_section(results: Optional[dict], extra: Optional[dict[str, float]] = None) -> Section:
    """Every numeric timing in results.json (``train_seconds``, the ``timing`` dict) plus ``extra``."""
    rows: dict[str, float] = {}
    if results:
        rows |= {"train_seconds": results.get("train_seconds")}
        if isinstance(results.get("timing"), dict):
            rows |= results["timing"]
    rows |= extra or {}
    rows = {k: v for k, v in rows.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    missing = note("No results.json: no training timings.") if results is None else ""
    body = "".join(f'<tr><td>{html.escape(k)}</td><td class="num">{_duration(v)}</td></tr>'
                   for k, v in rows.items())
    return Section("timings", "Timings", missing + (f"<table>{body}</table>" if rows else ""))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{seconds:.1f} s ({minutes} min {rest:02d} s)"
    return f"{seconds:.1f} s ({minutes // 60} h {minutes % 60:02d} min {rest:02d} s)"


def render_page(title: str, summary: str, sections: Sequence[Section]) -> str:
    """The whole page: inline CSS, a table of contents of anchors, the sections in order."""
    links = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n</section>'
                     for s in sections)
    written = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body><h1>{html.escape(title)}</h1>\n"
        f'<p class="summary">{summary}</p>\n<nav>{links}</nav>\n{body}\n'
        f"<footer><p>Written {written} by drivseg report.py.</p></footer></body></html>\n"
    )


# ---------------------------------------------------------------- the page


def guarded(section_id: str, title: str, build: Callable[[], Section]) -> Section:
    """``build()``, or a note saying what went wrong: the report is written at the end of every
    training run, and an unreadable optional input must not turn a finished run into a failed one."""
    try:
        return build()
    except Exception as err:  # noqa: BLE001 - any failure of one section becomes its note
        return Section(section_id, title, note(f"Could not build this section: {type(err).__name__}: {err}"))


def write_report(
    run_dir: Path, samples: int = 3, device: str = "cpu", data_root: Optional[str] = None
) -> Path:
    """Write ``run_dir/report.html`` from whatever the run left (see the module docstring); returns its path.

    ``samples`` best and as many worst val images are shown; ``data_root`` overrides the config's.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist; pass the --output-dir of a train.py run")
    config, config_error = _read_input(read_yaml, run_dir / "config.yaml")
    results, results_error = _read_input(read_json, run_dir / "results.json")
    defaults, _ = _read_input(read_yaml, DEFAULTS)
    checkpoint = find_best_checkpoint(run_dir, results)
    scoring, reason = _score_for_report(run_dir, checkpoint, config, samples, device, data_root)
    names, matrix, origin = _run_confusion(run_dir, scoring, reason)

    extra = {"report: scoring the val split": scoring.seconds} if scoring else {}
    sections = [
        guarded("config", "Configuration", lambda: config_section(
            config, defaults, config_error or "No config.yaml in this run directory.")),
        guarded("curves", "Training curves", lambda: curves_section(read_history(run_dir))),
        guarded("iou", "Per-class IoU (val)", lambda: iou_section(results, names, matrix)),
        guarded("confusion", "Confusion matrix (val)", lambda: confusion_section(names, matrix, origin)),
        guarded("samples", "Best and worst validation images", lambda: samples_section(scoring, reason)),
        guarded("timings", "Timings", lambda: timings_section(results, extra)),
    ]
    summary = html.escape(results_error) if results_error else _summary(results, checkpoint)
    out = run_dir / REPORT_FILE
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(render_page(f"Run report: {run_dir.name}", summary, sections))
    tmp.replace(out)  # a reader never sees half a page
    return out


def _read_input(read: Callable[[Path], Optional[dict]], path: Path) -> tuple[Optional[dict], str]:
    """(content or None, "" or why it could not be read): a corrupt file is treated like a missing one."""
    try:
        return read(path), ""
    except Exception as err:  # noqa: BLE001 - YAML, JSON and OS errors alike
        return None, f"{path.name} cannot be read ({type(err).__name__}: {err})."


def _score_for_report(run_dir: Path, checkpoint: Optional[Path], config: Optional[dict], samples: int,
                      device: str, data_root: Optional[str]) -> tuple[Optional[ValScoring], str]:
    """The val scoring pass, or None and the reason it was not done."""
    if checkpoint is None:
        return None, f"No best checkpoint in {run_dir / 'checkpoints'}: no predictions to show."
    if samples == 0 and (run_dir / "val_confusion.csv").is_file():
        return None, "No sample images were asked for (samples=0)."  # the matrix is on disk: no pass needed
    try:
        return score_val_split(checkpoint, config, samples, device, data_root), ""
    except Exception as err:  # noqa: BLE001 - data moved or deleted, checkpoint unreadable
        reason = f"Could not score {checkpoint.name} on the val split: {err}"
        if config is None:
            reason = f"No config.yaml to say where the data is (report.py --data-root DIR). {reason}"
        return None, reason


def _run_confusion(run_dir: Path, scoring: Optional[ValScoring],
                   reason: str) -> tuple[Optional[list[str]], Optional[np.ndarray], str]:
    """(class names, matrix, where they come from): ``val_confusion.csv``, else the scoring pass."""
    path = run_dir / "val_confusion.csv"
    origin = reason or "No val_confusion.csv and nothing scored."
    if path.is_file():
        try:
            names, matrix = read_confusion_csv(path)
            return names, matrix, "From val_confusion.csv."
        except Exception as err:  # noqa: BLE001
            origin = f"val_confusion.csv cannot be read ({type(err).__name__}: {err}). {origin}"
    if scoring is not None:
        computed = f"Computed for this report: the best checkpoint on the {scoring.images} val images."
        return scoring.class_names, scoring.matrix, computed
    return None, None, origin


def _summary(results: Optional[dict], checkpoint: Optional[Path]) -> str:
    if results is None:
        return "No results.json: the run did not finish, or it predates results.json."
    parts = []
    if results.get("val/mIoU") is not None:
        parts.append(f"val mIoU <b>{100 * results['val/mIoU']:.2f}%</b>")
    if results.get("val/pixel_acc") is not None:
        parts.append(f"pixel accuracy {100 * results['val/pixel_acc']:.2f}%")
    for key in ("epochs", "global_step"):
        if results.get(key) is not None:
            parts.append(f"{key.replace('_', ' ')} {results[key]}")
    if checkpoint is not None:
        parts.append(f"best checkpoint {html.escape(str(checkpoint))}")
    return " &middot; ".join(parts)
