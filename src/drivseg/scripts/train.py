"""Train a segmentation model on a driving dataset.

    python train.py                                  # U-Net on the embedded synthetic scenes, CPU
    python train.py --arch pspnet --gpus 2           # SMP PSPNet, 2 GPUs, DDP
    python train.py --config configs/experiments/camvid_unet.yaml --data-root ../data/camvid
    python train.py --accelerator cpu --devices 2    # real DDP (gloo) on CPU
    python train.py --max-time 20m --epochs 100      # a wall-clock budget: the LR reaches 0 at 20 min

parse -> seed -> run dir -> datamodule -> network + loss -> module -> logger -> trainer -> fit ->
validate/test the best checkpoint -> results.json (+ history.csv, val_confusion.csv, report.html).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence


import albumentations as A
import pytorch_lightning as pl
import yaml
from pytorch_lightning.utilities.exceptions import SIGTERMException

from drivseg.budget import WallClockBudget
from drivseg.cli import parse_config
from drivseg.data import get_source
from drivseg.data.datamodule import resolve_root
from drivseg.data.download import download_for
from drivseg.data.taxonomy import apply_taxonomy
from drivseg.entry import run_entry_point
from drivseg.evaluation import write_confusion_csv
from drivseg.experiment import build_datamodule, build_module, class_weights, normalization, run_name
from drivseg.history import HistoryWriter
from drivseg.loggers import build_logger, finish_wandb, log_config
from drivseg.performance import resolve_precision
from drivseg.results import gather_skipped, iou_table, kill_other_processes, to_floats, write_results
from drivseg.run_dir import prepare_run_dir, resume_command
from drivseg.trainer import build_trainer, resolve_devices
from drivseg.wandb_dashboard import wandb_callbacks

SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


def main(argv=None) -> int:
    """Train one run; the W&B run it opens is finished however it ends (several runs may share a process)."""
    try:
        return train(argv)
    finally:
        finish_wandb()


def train(argv=None, extra_callbacks: Sequence[pl.Callback] = ()) -> int:
    """The run itself. ``extra_callbacks`` join the trainer's (benchmarks measure the pipeline with them)."""
    cfg = parse_config(argv)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    source = get_source(cfg.data, cfg.data_root)
    if cfg.download:
        download_for(source, cfg.data_root)  # before resolve_root, which rejects a missing folder
    source = apply_taxonomy(source, cfg.taxonomy)
    root = resolve_root(source, cfg.data_root)
    if cfg.check_data:
        from drivseg.data.check import check_dataset

        out = Path(cfg.output_dir or ".")
        out.mkdir(parents=True, exist_ok=True)
        return check_dataset(source, root, out / f"{source.name}_class_histogram.png", num_workers=cfg.num_workers)

    name = run_name(cfg)
    run_dir = Path(cfg.output_dir or Path("runs") / name)
    prepare_run_dir(run_dir, cfg.resume, cfg.overwrite)  # before any work: never overwrite a run silently
    mean, std = normalization(cfg.encoder, cfg.encoder_weights)
    dm = build_datamodule(cfg, source, root)
    dm.prepare_data()  # generate / check the data before any process or worker starts
    dm.setup()
    module = build_module(cfg, dm.label_spec, class_weights(cfg.class_weights, dm), mean, std)

    precision, why = resolve_precision(cfg.precision, resolve_devices(cfg)[0])
    logger = build_logger(cfg.logger, run_dir, name, cfg.wandb_project, cfg.wandb_entity, cfg.wandb_group,
                          cfg.wandb_job_type, resume=cfg.resume)
    callbacks = [HistoryWriter(run_dir / "history.csv"), *extra_callbacks]
    if cfg.logger == "wandb":
        callbacks += wandb_callbacks(cfg, run_dir, dm.label_spec, mean, std)
    trainer = build_trainer(cfg, run_dir, logger, callbacks, precision, resume_command(argv))
    resolved = vars(cfg) | {"run_dir": str(run_dir), "precision_resolved": precision}
    if trainer.is_global_zero:
        print(f"precision {precision} ({why})")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        A.save(dm.train_pipeline(), str(run_dir / "augment.yaml"), data_format="yaml")
    log_config(logger, resolved, argv)  # under a W&B sweep: checks the sweep's values are what ran

    try:
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.resume, weights_only=True)
    except SIGTERMException:
        kill_other_processes(trainer)
        return SIGTERM_EXIT_CODE
    except BaseException:
        kill_other_processes(trainer)  # the other DDP processes would wait for this one until the timeout
        raise
    budget = next(cb for cb in trainer.callbacks if isinstance(cb, WallClockBudget))
    timing = budget.timing()

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    module.extended_metrics = True  # the final scores add per-image mIoU, boundary F1, per-class Dice
    metrics = to_floats(trainer.validate(module, datamodule=dm, ckpt_path=best or None, verbose=False, weights_only=True)[0])
    val_matrix = module.last_matrices.get("val")
    if dm.has_test:
        metrics |= to_floats(trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False, weights_only=True)[0])
    elif trainer.is_global_zero:
        print(f"No test split under {root}: skipping the test stage.")
    skipped = gather_skipped(module.skipped_samples)
    if trainer.is_global_zero:
        print(iou_table(metrics, dm.label_spec.class_names, "val"))
        if val_matrix is not None:
            write_confusion_csv(val_matrix.numpy(), dm.label_spec.class_names, run_dir / "val_confusion.csv")
        results = metrics | {
            "best_checkpoint": best or None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "train_seconds": timing["fit_seconds"],
            "timing": timing,
            "bad_samples": skipped,
            "precision": precision,
            "run_dir": str(run_dir),
        }
        write_results(run_dir / "results.json", results)
        print(f"Results in {run_dir / 'results.json'}")
        if cfg.report:
            from drivseg.report import write_report

            print(f"Report in {write_report(run_dir)}")
    return 0


def run() -> None:
    """Console command ``drivseg-train``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.train
    run()
