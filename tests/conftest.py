"""Shared fixtures: tiny datasets in tmp_path, the real CamVid when present, a train.py runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# CI points DRIVSEG_CAMVID_ROOT at the shared copy; a developer's clone may not have it
CAMVID_ROOT = Path(os.environ.get("DRIVSEG_CAMVID_ROOT", REPO.parent / "shared" / "data" / "camvid"))


def blocky_pair(rng: np.random.Generator, h: int, w: int, num_classes: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """An image whose colour follows its label map (learnable), plus the index mask."""
    mask = np.kron(rng.integers(0, num_classes, (h // 8 + 1, w // 8 + 1)), np.ones((8, 8), dtype=np.int64))[:h, :w]
    colours = np.linspace(0, 255, num_classes + 1).astype(np.int64)
    image = np.stack([colours[mask], colours[::-1][mask], (colours[mask] * 7) % 256], axis=-1).astype(np.uint8)
    return image, mask.astype(np.uint8)


def write_segnet_dataset(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (48, 64), seed: int = 0, void_every: int = 5
) -> Path:
    """A CamVid (SegNet layout) dataset: ``split/`` + ``splitannot/``, values 0..10 and 11 (void)."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, mask = blocky_pair(rng, *size)
            mask[::void_every, ::void_every] = 11
            name = f"seq{i % 3:02d}_{i:06d}.png"
            Image.fromarray(image).save(root / split / name)
            Image.fromarray(mask, mode="L").save(root / f"{split}annot" / name)
    return root


@pytest.fixture
def tiny_camvid(tmp_path: Path) -> Path:
    """8 train / 5 val images, 48x64; 5 val images so 2 DDP ranks get unequal shares."""
    return write_segnet_dataset(tmp_path / "camvid", {"train": 8, "val": 5})


@pytest.fixture
def camvid_root() -> Path:
    if not (CAMVID_ROOT / "train").is_dir():
        pytest.skip(f"real CamVid not found at {CAMVID_ROOT} (set DRIVSEG_CAMVID_ROOT)")
    return CAMVID_ROOT


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a train.py subprocess: no W&B credentials, caches in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path / "home"), WANDB_SILENT="true", PYTHONWARNINGS="ignore", **extra)
    env.setdefault("DRIVSEG_CACHE", os.environ.get("DRIVSEG_CACHE", str(Path.home() / ".cache" / "drivseg")))
    return env


def run_train(args: list[str], tmp_path: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` in a subprocess (as a user would) and capture its output."""
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_single_threaded(argv: list[str]) -> None:
    """``train.main(argv)`` in this process with one torch thread (see one_torch_thread); asserts it succeeds."""
    import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train.main(argv) == 0
    finally:
        torch.set_num_threads(threads)


def train_tiny_checkpoint(tmp_dir: Path, arch: str = "tiny_fcn") -> tuple[Path, Path]:
    """(dataset root, checkpoint): ``arch`` trained for one epoch on a 48x64 CamVid-layout set."""
    root = write_segnet_dataset(tmp_dir / "camvid", {"train": 8, "val": 5})
    argv = ["--data", "camvid", "--data-root", str(root), "--arch", arch, "--crop-size", "32x48",
            "--batch-size", "4", "--num-workers", "0", "--logger", "none", "--epochs", "1",
            "--output-dir", str(tmp_dir / "run")]
    train_single_threaded(argv)
    return root, tmp_dir / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture
def one_torch_thread():
    """Opt-in (``pytest.mark.usefixtures``). Tiny tensors gain nothing from a second thread, and on a busy shared CPU the threads'
    synchronisation makes every op wait for a time slice (Fast-SCNN at 64x64: 1.3 s vs 5 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
