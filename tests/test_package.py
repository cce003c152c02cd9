"""The package installs: its wheel declares every third-party module the code imports, ships the
configs, has a console command per script, and works installed outside the checkout."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO

SRC = REPO / "src" / "drivseg"
SCRIPTS = sorted(p.stem for p in REPO.glob("*.py"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: build with this environment's setuptools, no download
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)  # fmt: skip
    (path,) = out.glob("drivseg-*.whl")
    return zipfile.ZipFile(path)


def _read(wheel: zipfile.ZipFile, suffix: str) -> str:
    return wheel.read(next(n for n in wheel.namelist() if n.endswith(suffix))).decode()


def _imported_modules() -> set[str]:
    """Top-level names of every module src/drivseg imports (at module level or inside functions)."""
    names = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"drivseg", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_third_party_module_is_a_declared_dependency(wheel) -> None:
    declared = {_normalise(re.split(r"[ ;<>=!\[]", line.split(":", 1)[1].strip())[0])
                for line in _read(wheel, "METADATA").splitlines() if line.startswith("Requires-Dist:")}  # fmt: skip
    providers = metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_modules()):
        dists = {_normalise(d) for d in providers.get(module, [])}
        if not dists:
            missing[module] = "no installed distribution provides it"
        elif not dists & declared:
            missing[module] = f"provided by {sorted(dists)}, not declared in pyproject.toml"
    assert not missing, missing


def test_the_wheel_ships_every_module_and_the_configs(wheel) -> None:
    names = set(wheel.namelist())
    modules = {f"drivseg/{p.relative_to(SRC).as_posix()}" for p in SRC.rglob("*.py")}
    assert modules <= names, sorted(modules - names)  # a subpackage missing from `packages`
    configs = {f"drivseg/configs/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*.yaml")}
    assert "drivseg/configs/default.yaml" in configs and configs <= names, sorted(configs - names)


def test_every_script_has_a_console_command_that_resolves(wheel) -> None:
    entry = dict(re.findall(r"^(drivseg-\w+) = (\S+)$", _read(wheel, "entry_points.txt"), re.M))
    assert set(entry) == {f"drivseg-{name}" for name in SCRIPTS}
    for command, target in entry.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), command
    # the top-level scripts are thin: no sys.path edits, main() comes from the package
    for name in SCRIPTS:
        text = (REPO / f"{name}.py").read_text()
        assert "sys.path" not in text and f"from drivseg.scripts.{name} import main" in text, name


@pytest.mark.slow
def test_installed_from_the_wheel_it_runs_outside_the_checkout(wheel, tmp_path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), wheel.filename],
                   check=True, capture_output=True)  # fmt: skip
    code = ("import drivseg, drivseg.cli as cli; print(drivseg.__file__); print(cli.DEFAULT_CONFIG); "
            "cfg = cli.parse_config(['--augment', 'strong', '--max-time', '20m', '--encoder-weights', 'none']); print(cfg.augment, cfg.max_time)")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    module, default_config, parsed = out.stdout.splitlines()
    assert module.startswith(str(target)) and default_config.startswith(str(target))
    assert parsed == "strong 20m"
    help_text = subprocess.run([sys.executable, "-m", "drivseg.scripts.train", "--help"], cwd=tmp_path, env=env,
                               capture_output=True, text=True)  # fmt: skip
    assert help_text.returncode == 0 and "--max-time" in help_text.stdout
