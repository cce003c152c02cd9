"""``SegmentationModule``: aux losses, logits resized to the labels, LR schedules, weight decay."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.losses import build_loss
from drivseg.module import SegmentationModule, build_scheduler, class_ids, resize_logits
from tests.test_metrics import reference_metrics

NUM_CLASSES = 3
CLASS_NAMES = ["road", "car", "sky"]


class AuxNet(nn.Module):
    """Main head at full resolution, aux head at half resolution (training mode only, unless
    ``aux_in_eval``); ``aux_as_list`` returns two aux heads."""

    def __init__(self, aux_in_eval: bool = False, aux_as_list: bool = False) -> None:
        super().__init__()
        self.main = nn.Conv2d(3, NUM_CLASSES, 1)
        self.aux = nn.Conv2d(3, NUM_CLASSES, 1)
        self.aux_in_eval = aux_in_eval
        self.aux_as_list = aux_as_list

    def forward(self, x: torch.Tensor):
        main = self.main(x)
        if not self.training and not self.aux_in_eval:
            return main
        aux = F.avg_pool2d(self.aux(x), 2)  # (B, C, H/2, W/2)
        return {"out": main, "aux": [aux, 2 * aux] if self.aux_as_list else aux}


class HalfResNet(nn.Module):
    """Logits at half the input resolution, like a network without a final upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, NUM_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.avg_pool2d(x, 2))  # (B, C, H/2, W/2)


def _batch(n: int = 2, h: int = 8, w: int = 10, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, NUM_CLASSES, (n, h, w), generator=g)
    mask[:, 0] = IGNORE_INDEX
    image = torch.randn(n, 3, h, w, generator=g)
    return {"image": image, "mask": mask, "name": [f"{i}.png" for i in range(n)]}


def _ce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX)


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **kwargs,
    )


# ---------------------------------------------------------------- aux outputs


@pytest.mark.parametrize("aux_as_list", [False, True])
def test_training_loss_adds_weighted_aux_losses(aux_as_list: bool) -> None:
    torch.manual_seed(0)
    net = AuxNet(aux_as_list=aux_as_list)
    module = SegmentationModule(net, build_loss("ce"), CLASS_NAMES, aux_weight=0.3).train()
    batch = _batch()

    loss = module.training_step(batch, 0)

    with torch.no_grad():
        main = net.main(batch["image"])
        aux = F.avg_pool2d(net.aux(batch["image"]), 2)
    aux_heads = [aux, 2 * aux] if aux_as_list else [aux]
    expected = _ce(main, batch["mask"]) + sum(0.3 * _ce(a, batch["mask"]) for a in aux_heads)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() != pytest.approx(_ce(main, batch["mask"]).item(), rel=1e-3)


def test_forward_returns_main_logits_only() -> None:
    net = AuxNet(aux_in_eval=True).eval()
    module = SegmentationModule(net, build_loss("ce"), CLASS_NAMES).eval()
    x = torch.randn(1, 3, 8, 10)
    with torch.no_grad():
        out = module(x)
        assert torch.equal(out, net.main(x))


def test_validation_loss_ignores_aux_heads() -> None:
    torch.manual_seed(0)
    net = AuxNet(aux_in_eval=True)
    module = SegmentationModule(net, build_loss("ce"), CLASS_NAMES, aux_weight=0.4)
    batch = _batch(n=4)
    samples = [{"image": batch["image"][i], "mask": batch["mask"][i], "name": str(i)} for i in range(4)]
    (results,) = _trainer().validate(module, DataLoader(samples, batch_size=4), verbose=False)
    with torch.no_grad():
        expected = _ce(net.main(batch["image"]), batch["mask"])
    assert results["val/loss"] == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- label resolution


def test_resize_logits_is_bilinear_with_half_pixel_centres() -> None:
    # width 2 -> 4: output pixel centres map to input x = -0.25, 0.25, 0.75, 1.25 (clamped to 0..1)
    logits = torch.tensor([[[[0.0, 1.0]]]])  # (1, 1, 1, 2)
    out = resize_logits(logits, (1, 4))
    assert out.shape == (1, 1, 1, 4)
    assert out.flatten().tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])


def test_resize_logits_keeps_logits_of_the_right_size() -> None:
    logits = torch.randn(2, 3, 5, 7)
    assert resize_logits(logits, (5, 7)) is logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_class_ids_are_argmax_with_the_first_class_on_ties_and_nan_winning(dtype) -> None:
    scores = torch.randint(0, 3, (2, 5, 7, 9)).to(dtype)  # few values: many ties
    scores[0, 3, 1, 2] = scores[1, 1, 0, 0] = scores[1, 4, 0, 0] = float("nan")
    ids = class_ids(scores)
    assert ids.dtype == torch.int64 and ids.shape == (2, 7, 9)
    assert torch.equal(ids, scores.argmax(dim=1))
    assert ids[0, 1, 2] == 3 and ids[1, 0, 0] == 1  # NaN wins, the first NaN on several
    hand = torch.tensor([[[1.0]], [[4.0]], [[4.0]], [[2.0]]])  # (C, H, W): a tie between classes 1 and 2
    assert class_ids(hand, dim=0).item() == 1
    assert torch.equal(class_ids(scores[0], dim=0), scores[0].argmax(dim=0))


def test_low_resolution_logits_are_scored_at_label_resolution() -> None:
    torch.manual_seed(0)
    net = HalfResNet()
    module = SegmentationModule(net, build_loss("ce"), CLASS_NAMES)
    batch = _batch(n=5, h=8, w=10, seed=3)
    samples = [{"image": batch["image"][i], "mask": batch["mask"][i], "name": str(i)} for i in range(5)]
    (results,) = _trainer().validate(module, DataLoader(samples, batch_size=2), verbose=False)

    with torch.no_grad():
        up = F.interpolate(net(batch["image"]), size=(8, 10), mode="bilinear", align_corners=False)
    ref = reference_metrics(up.argmax(1).numpy(), batch["mask"].numpy(), NUM_CLASSES)
    assert results["val/pixel_acc"] == pytest.approx(ref["pixel_acc"], abs=1e-6)
    assert results["val/mIoU"] == pytest.approx(ref["mIoU"], abs=1e-6)
    assert results["val/loss"] == pytest.approx(_ce(net(batch["image"]), batch["mask"]).item(), rel=1e-5)


# ---------------------------------------------------------------- LR schedules


def _lrs(name: str, total: int, warmup: int, max_lr: float = 0.1) -> list[float]:
    """LR in effect at each of ``total`` steps (the scheduler steps after every optimizer step)."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=max_lr)
    scheduler = build_scheduler(optimizer, name, total, warmup, max_lr)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("name", ["poly", "cosine", "none"])
def test_linear_warmup_reaches_the_base_lr(name: str) -> None:
    lrs = _lrs(name, total=100, warmup=10)
    # step k < 10 uses lr * (k + 1) / 10; the last warmup step and the first after it use lr
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[4] == pytest.approx(0.05)
    assert lrs[9] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.1)


def test_poly_schedule_decays_with_power_09() -> None:
    lrs = _lrs("poly", total=100, warmup=10)
    # after warmup t = (k - 10) / 90 and lr = 0.1 * (1 - t) ** 0.9
    assert lrs[55] == pytest.approx(0.1 * 0.5**0.9)
    assert lrs[82] == pytest.approx(0.1 * 0.2**0.9)
    assert lrs[99] == pytest.approx(0.1 * (1 / 90) ** 0.9)


def test_cosine_schedule_follows_half_a_cosine() -> None:
    lrs = _lrs("cosine", total=100, warmup=10)
    # t = (k - 10) / 90, lr = 0.1 * (1 + cos(pi t)) / 2
    assert lrs[40] == pytest.approx(0.1 * (1 + math.cos(math.pi / 3)) / 2)  # t = 1/3 -> 0.075
    assert lrs[55] == pytest.approx(0.05)
    assert lrs[99] == pytest.approx(0.1 * (1 + math.cos(math.pi * 89 / 90)) / 2)


def test_constant_schedule_after_warmup_and_none_without() -> None:
    assert _lrs("none", total=30, warmup=5)[5:] == pytest.approx([0.1] * 25)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    assert build_scheduler(optimizer, "none", 30, 0, 0.1) is None


def test_onecycle_warms_up_to_max_lr_then_anneals() -> None:
    lrs = _lrs("onecycle", total=100, warmup=10)
    # progress p = step / 100; cosine from max / 25 up to max over p < 0.1 (the warmup), then cosine
    # down to max / 25 / 1e4 over the rest: the LR part of torch's OneCycleLR, on progress
    start, end = 0.1 / 25, 0.1 / 25 / 1e4
    assert lrs[0] == pytest.approx(start)
    assert lrs[5] == pytest.approx(0.1 + (start - 0.1) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(end + (0.1 - end) / 2)  # half-way through annealing (p = 0.55)
    assert lrs[99] == pytest.approx(end + (0.1 - end) * 0.5 * (1 + math.cos(math.pi * 0.89 / 0.9)))
    assert max(lrs) == pytest.approx(0.1)


def test_onecycle_without_warmup_peaks_at_30_percent() -> None:
    lrs = _lrs("onecycle", total=100, warmup=0)
    assert int(np.argmax(lrs)) == 30


def test_unknown_scheduler_names_the_valid_ones() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises((ValueError, ConfigError), match="poly"):
        build_scheduler(optimizer, "linear", 10, 0, 0.1)


# ---------------------------------------------------------------- configure_optimizers


class RecordLR(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def _small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, NUM_CLASSES, 1)
    )


def test_fit_warms_up_per_epoch_and_skips_decay_on_1d_params() -> None:
    torch.manual_seed(0)
    net = _small_net()
    module = SegmentationModule(
        net, build_loss("ce"), CLASS_NAMES, optimizer="adamw", lr=0.01, weight_decay=0.1,
        scheduler="poly", warmup_epochs=1,
    )
    batch = _batch(n=6, seed=4)
    samples = [{"image": batch["image"][i], "mask": batch["mask"][i], "name": str(i)} for i in range(6)]
    record = RecordLR()
    trainer = _trainer(max_epochs=2, callbacks=[record], num_sanity_val_steps=0)
    trainer.fit(module, DataLoader(samples, batch_size=2))  # 3 steps per epoch, 6 in all

    # warmup = 1 epoch = 3 steps: lr/3, 2lr/3, lr; then poly over the 3 remaining steps
    expected = [0.01 / 3, 0.02 / 3, 0.01, 0.01, 0.01 * (2 / 3) ** 0.9, 0.01 * (1 / 3) ** 0.9]
    assert record.lrs == pytest.approx(expected)

    decay, no_decay = trainer.optimizers[0].param_groups
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert ids(decay["params"]) == {id(net[0].weight), id(net[3].weight)}
    assert ids(no_decay["params"]) == {id(net[0].bias), id(net[1].weight), id(net[1].bias), id(net[3].bias)}


def test_weight_decay_shrinks_kernels_but_not_biases_or_norms() -> None:
    net = _small_net()
    module = SegmentationModule(
        net, build_loss("ce"), CLASS_NAMES, optimizer="adamw", lr=0.5, weight_decay=0.1, scheduler="none"
    )
    batch = _batch(n=2, seed=5)
    samples = [{"image": batch["image"][i], "mask": batch["mask"][i], "name": str(i)} for i in range(2)]
    trainer = _trainer(max_steps=1, num_sanity_val_steps=0)
    trainer.fit(module, DataLoader(samples, batch_size=2))

    # a fresh optimizer step with all-zero gradients moves parameters by weight decay only:
    # AdamW multiplies decayed tensors by (1 - lr * wd) = 0.95 and leaves the others as they are
    optimizer = module.configure_optimizers()
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    kernels = {"0.weight", "3.weight"}  # the two conv kernels; the rest are biases and BatchNorm
    for name, p in net.named_parameters():
        factor = 0.95 if name in kernels else 1.0
        assert torch.allclose(p.detach(), before[name] * factor, atol=1e-7), name
