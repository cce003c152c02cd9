"""Command line: default.yaml < --config < flags, value parsing, registries in --help."""

from __future__ import annotations

import pytest
import yaml

from drivseg.cli import DEFAULT_CONFIG, crop_size, parse_config
from drivseg.data import DATASETS
from drivseg.errors import ConfigError
from drivseg.losses import LOSSES
from drivseg.models import ARCHS


def test_precedence_default_then_config_then_flags(tmp_path) -> None:
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"arch": "fpn", "lr": 0.123, "batch_size": 3}))

    cfg = parse_config([])
    assert (cfg.arch, cfg.lr, cfg.batch_size) == (defaults["arch"], defaults["lr"], defaults["batch_size"])

    cfg = parse_config(["--config", str(config)])
    assert (cfg.arch, cfg.lr, cfg.batch_size) == ("fpn", 0.123, 3)
    assert cfg.epochs == defaults["epochs"]  # untouched keys keep the default

    cfg = parse_config(["--config", str(config), "--lr", "0.5", "--arch", "pspnet"])
    assert (cfg.arch, cfg.lr, cfg.batch_size) == ("pspnet", 0.5, 3)


def test_every_default_key_is_a_flag() -> None:
    cfg = parse_config([])
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert set(defaults) <= set(vars(cfg))


def test_unknown_config_key_names_file_and_key(tmp_path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*learning_rate"):
        parse_config(["--config", str(config)])


def test_unknown_arch_in_config_lists_valid(tmp_path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("arch: unet3000\n")
    with pytest.raises(ConfigError, match="unet3000.*deeplabv3plus"):
        parse_config(["--config", str(config)])


def test_base_file_supplies_the_keys_a_config_does_not_set(tmp_path) -> None:
    # chain: flags < variant.yaml < recipes/recipe.yaml < common.yaml < default.yaml; base paths
    # are relative to the file naming them, not to the working directory
    (tmp_path / "recipes").mkdir()
    (tmp_path / "common.yaml").write_text("batch_size: 3\nlr: 0.5\nepochs: 7\n")
    (tmp_path / "recipes" / "recipe.yaml").write_text("base: ../common.yaml\narch: fpn\nlr: 0.25\nmax_time: '00:20:00'\n")
    variant = tmp_path / "variant.yaml"
    variant.write_text("base: recipes/recipe.yaml\nmax_time: '02:00:00'\n")
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())

    cfg = parse_config(["--config", str(variant), "--epochs", "9"])
    assert (cfg.arch, cfg.lr, cfg.batch_size, cfg.max_time, cfg.epochs) == ("fpn", 0.25, 3, "02:00:00", 9)
    assert cfg.loss == defaults["loss"]
    assert cfg.config == str(variant)


def test_base_chain_errors_name_the_file(tmp_path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("base: b.yaml\n")
    b.write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml.*loops"):
        parse_config(["--config", str(a)])

    a.write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"a\.yaml.*missing\.yaml does not exist"):
        parse_config(["--config", str(a)])

    # an unknown key is reported against the base file that holds it
    a.write_text("base: b.yaml\nlr: 0.1\n")
    b.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"b\.yaml.*learning_rate"):
        parse_config(["--config", str(a)])


def test_two_hour_recipe_is_the_twenty_minute_one_with_a_longer_budget() -> None:
    experiments = DEFAULT_CONFIG.parent / "experiments"
    short = vars(parse_config(["--config", str(experiments / "camvid_cpu_20m.yaml")]))
    long = vars(parse_config(["--config", str(experiments / "camvid_cpu_2h.yaml")]))
    differ = {key for key in short if short[key] != long[key]}
    assert differ == {"config", "max_time", "epochs", "val_every"}
    assert long["max_time"] == "02:00:00"


@pytest.mark.parametrize(
    "given, expected",
    [(["352", "480"], [352, 480]), (["352x480"], [352, 480]), ("352X480", [352, 480]), (["none"], None), (None, None)],
)
def test_crop_size_forms(given, expected) -> None:
    assert crop_size(given) == expected


@pytest.mark.parametrize("bad", [["352"], ["a", "b"], ["0x480"], ["1", "2", "3"]])
def test_bad_crop_size_is_rejected(bad) -> None:
    with pytest.raises(ConfigError, match="crop-size"):
        crop_size(bad)


def test_flags_override_crop_size_and_none_values() -> None:
    cfg = parse_config(["--crop-size", "64x96", "--encoder-weights", "none", "--max-time", "00:05:00"])
    assert cfg.crop_size == [64, 96] and cfg.encoder_weights is None and cfg.max_time == "00:05:00"


def test_bad_max_time_is_rejected() -> None:
    with pytest.raises(ConfigError, match="HH:MM:SS"):
        parse_config(["--max-time", "5min"])


def test_help_lists_every_registry(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in [*ARCHS, *DATASETS, *LOSSES]:
        assert name in text


@pytest.mark.parametrize("path", sorted((DEFAULT_CONFIG.parent / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_experiment_configs_resolve(path) -> None:
    cfg = parse_config(["--config", str(path)])
    # camvid_<arch>.yaml trains <arch> on camvid; camvid_cpu_<budget>.yaml are budget recipes
    data, rest = path.stem.split("_", 1)
    assert cfg.data == data
    if rest.startswith("cpu_"):
        assert cfg.max_time is not None and cfg.arch in ARCHS
    else:
        assert cfg.arch == rest
    assert cfg.crop_size is not None and len(cfg.crop_size) == 2


def test_default_encoder_is_lite0_with_its_offline_imagenet_weights_and_normalisation() -> None:
    from drivseg.experiment import normalization

    cfg = parse_config([])
    assert (cfg.arch, cfg.encoder, cfg.encoder_weights) == ("unet", "tf_efficientnet_lite0", "imagenet")
    assert normalization(cfg.encoder, cfg.encoder_weights) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    "argv, weights",
    [(["--arch", "fast_scnn"], None),  # from scratch: nothing to load
     (["--arch", "segformer"], None),  # mit_b0 would need a download
     (["--encoder", "resnet34"], None),
     (["--encoder", "tf_efficientnet_lite2"], "imagenet"),
     (["--encoder-weights", "none"], None),
     (["--encoder", "resnet34", "--encoder-weights", "imagenet"], "imagenet")],  # an explicit choice is kept
)
def test_auto_encoder_weights_load_imagenet_only_where_no_download_is_needed(argv, weights) -> None:
    assert parse_config(argv).encoder_weights == weights
