"""Train a segmentation model on a driving dataset.

    python train.py                                  # U-Net on the embedded synthetic scenes, CPU
    python train.py --arch pspnet --gpus 2           # SMP PSPNet, 2 GPUs, DDP
    python train.py --config configs/experiments/camvid_unet.yaml --data-root ../data/camvid
    python train.py --accelerator cpu --devices 2    # real DDP (gloo) on CPU

parse -> seed -> datamodule -> network + loss -> module -> logger -> trainer -> fit -> validate/test.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import pytorch_lightning as pl  # noqa: E402
import yaml  # noqa: E402

from drivseg.cli import parse_config  # noqa: E402
from drivseg.data import get_source  # noqa: E402
from drivseg.data.datamodule import SegmentationDataModule, resolve_root  # noqa: E402
from drivseg.data.download import download_for  # noqa: E402
from drivseg.data.taxonomy import apply_taxonomy  # noqa: E402
from drivseg.entry import run_entry_point  # noqa: E402
from drivseg.experiment import build_module, class_weights, normalization, run_name  # noqa: E402
from drivseg.loggers import build_logger  # noqa: E402
from drivseg.results import iou_table, to_floats, write_results  # noqa: E402
from drivseg.trainer import build_trainer  # noqa: E402
from drivseg.wandb_images import WandbValidationImages  # noqa: E402


def main(argv=None) -> int:
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
        return check_dataset(source, root, out / f"{source.name}_class_histogram.png")

    mean, std = normalization(cfg.encoder, cfg.encoder_weights)
    dm = SegmentationDataModule(
        source, root, cfg.batch_size, cfg.eval_batch_size, cfg.num_workers,
        cfg.crop_size, cfg.image_scale, cfg.scale_range, mean, std,
    )  # fmt: skip
    dm.prepare_data()  # generate / check the data before any process or worker starts
    dm.setup()
    module = build_module(cfg, dm.label_spec, class_weights(cfg.class_weights, dm), mean, std)

    name = run_name(cfg)
    run_dir = Path(cfg.output_dir or Path("runs") / name)
    logger = build_logger(cfg.logger, run_dir, name, cfg.wandb_project, cfg.wandb_entity)
    callbacks = [WandbValidationImages(dm.label_spec, mean, std, cfg.log_images)] if cfg.logger == "wandb" else []
    trainer = build_trainer(cfg, run_dir, logger, callbacks)
    resolved = vars(cfg) | {"run_dir": str(run_dir)}
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    if logger is not None:
        logger.log_hyperparams(resolved)

    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.resume)
    train_seconds = time.perf_counter() - start

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    metrics = to_floats(trainer.validate(module, datamodule=dm, ckpt_path=best or None, verbose=False)[0])
    if dm.has_test:
        metrics |= to_floats(trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False)[0])
    elif trainer.is_global_zero:
        print(f"No test split under {root}: skipping the test stage.")
    if trainer.is_global_zero:
        print(iou_table(metrics, dm.label_spec.class_names, "val"))
        results = metrics | {
            "best_checkpoint": best or None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "train_seconds": round(train_seconds, 1),
            "run_dir": str(run_dir),
        }
        write_results(run_dir / "results.json", results)
        print(f"Results in {run_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
