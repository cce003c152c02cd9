"""Run a W&B sweep YAML without an account: grid and random search, one run directory per trial.

The YAML is the one ``wandb sweep`` reads (``program``, ``method``, ``metric``, ``parameters``,
``command``); each trial runs ``program``'s ``main(argv)`` in this process with the argv a W&B
agent would build, ``${args}`` expanded to ``--key=value`` flags exactly as the agent writes them,
plus ``--output-dir runs/<sweep>/<trial>``. Trials are numbered and their parameters are a
function of (the YAML, ``--seed``, the trial's number) only, so running the same command again
skips the trials that finished (``results.json`` / ``cv_results.json``), resumes an interrupted
train.py trial from its ``last.ckpt`` and runs the rest. Ctrl-C stops after the current trial
(twice: at once). Afterwards the leaderboard of the trials is printed (``drivseg.leaderboard``).

``method: bayes`` needs W&B's sweep server (it fits a model to the finished runs); locally it
falls back to random search and says so. Parameters: ``value``, ``values`` (+ ``probabilities``),
``min``/``max`` (int or float uniform) and the ``distribution`` names in ``DISTRIBUTIONS``;
nested ``parameters`` are not supported.

Agent trials that need their own folder: ``python sweep.py --trial PROGRAM --sweep-dir DIR ARGS``
runs ``PROGRAM`` with ``--output-dir DIR/<W&B run id>`` (used by sweeps over cv.py, whose
experiment folder is otherwise the same for every trial).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import yaml

from drivseg.errors import ConfigError
from drivseg.paths import REPO_ROOT

# the project's own programs run from the package (also when drivseg is installed without a checkout)
PACKAGE_PROGRAMS = {"train.py": "drivseg.scripts.train", "cv.py": "drivseg.scripts.cv"}
METHODS = ("grid", "random", "bayes")
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
DROPPED_MACROS = {"${env}", "${interpreter}", "${program}"}
DONE_FILES = ("results.json", "cv_results.json")  # train.py / cv.py write these only when finished
TRIAL_FILE = "sweep_trial.yaml"
STOPPED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C


def _categorical(p: dict, rng: np.random.Generator) -> Any:
    values = list(p["values"])
    weights = p.get("probabilities")
    index = rng.choice(len(values), p=None if weights is None else np.asarray(weights, float) / sum(weights))
    return values[int(index)]


def _q(value: float, p: dict) -> float:
    q = float(p.get("q", 1.0))
    return round(value / q) * q


# W&B's distribution names -> a sampler of one value
DISTRIBUTIONS: dict[str, Callable[[dict, np.random.Generator], Any]] = {
    "constant": lambda p, rng: p["value"],
    "categorical": _categorical,
    "int_uniform": lambda p, rng: int(rng.integers(int(p["min"]), int(p["max"]) + 1)),
    "uniform": lambda p, rng: float(rng.uniform(p["min"], p["max"])),
    "q_uniform": lambda p, rng: _q(rng.uniform(p["min"], p["max"]), p),
    "log_uniform_values": lambda p, rng: float(math.exp(rng.uniform(math.log(p["min"]), math.log(p["max"])))),
    "q_log_uniform_values": lambda p, rng: _q(math.exp(rng.uniform(math.log(p["min"]), math.log(p["max"]))), p),
    "log_uniform": lambda p, rng: float(math.exp(rng.uniform(p["min"], p["max"]))),  # min/max are ln values
    "normal": lambda p, rng: float(rng.normal(p.get("mu", 0.0), p.get("sigma", 1.0))),
    "log_normal": lambda p, rng: float(math.exp(rng.normal(p.get("mu", 0.0), p.get("sigma", 1.0)))),
}


@dataclass
class Sweep:
    """A sweep YAML, checked."""

    path: Path
    name: str
    method: str
    program: str
    parameters: dict[str, dict]
    command: list[str]
    metric: Optional[dict] = None
    run_cap: Optional[int] = None

    @property
    def metric_name(self) -> Optional[str]:
        return (self.metric or {}).get("name")


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: its number and parameter values."""

    index: int
    params: dict

    @property
    def name(self) -> str:
        """``t003-lr_0.001-loss_ce``: number first (unique), then the values (readable)."""
        parts = [f"{key}_{_short(value)}" for key, value in self.params.items()]
        slug = re.sub(r"[^A-Za-z0-9.+_=-]+", "_", "-".join(parts))[:80].strip("_-")
        return f"t{self.index:03d}" + (f"-{slug}" if slug else "")

    def flags(self) -> list[str]:
        """``--key=value`` as a W&B agent writes ``${args}`` (Python's str of the value)."""
        return [f"--{key}={value}" for key, value in self.params.items()]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "x".join(_short(v) for v in value)
    return str(value)


def load_sweep(path: Path) -> Sweep:
    """Read and check a sweep YAML; every problem names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {path} must be a mapping (program, method, metric, parameters, command)")
    method = data.get("method")
    if method not in METHODS:
        raise ConfigError(f"sweep file {path}: method {method!r}; expected one of {', '.join(METHODS)}")
    params = data.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"sweep file {path}: 'parameters' must map each flag to its values")
    for key, p in params.items():
        _check_parameter(path, key, p, method)
    command = [str(c) for c in data.get("command") or DEFAULT_COMMAND]
    unsupported = [c for c in command if c.startswith("${") and c not in DROPPED_MACROS | {"${args}"}]
    if unsupported:
        raise ConfigError(f"sweep file {path}: command macro {unsupported[0]} is not supported; use ${{args}} "
                          "(--key=value flags, which train.py and cv.py read)")
    if "${args}" not in command:
        raise ConfigError(f"sweep file {path}: the command has no ${{args}}, so no trial would get the sweep's values")
    program = data.get("program")
    if not program:
        raise ConfigError(f"sweep file {path}: 'program' is missing (e.g. program: train.py)")
    metric = data.get("metric")
    if metric is not None and (not isinstance(metric, dict) or "name" not in metric):
        raise ConfigError(f"sweep file {path}: metric must be a mapping with a name (and goal), e.g. {{name: val/mIoU, goal: maximize}}")
    return Sweep(path, str(data.get("name") or path.stem), method, str(program), params, command, metric,
                 data.get("run_cap"))


def _check_parameter(path: Path, key: str, p: Any, method: str) -> None:
    where = f"sweep file {path}: parameter {key}"
    if not isinstance(p, dict):
        raise ConfigError(f"{where} must be a mapping such as {{values: [a, b]}} or {{min: 0.0001, max: 0.01}}")
    if "parameters" in p:
        raise ConfigError(f"{where}: nested parameters are not supported by sweep.py; use flat flag names")
    kind = distribution(p)
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: distribution {kind!r} is not supported; use one of {', '.join(DISTRIBUTIONS)}")
    if method == "grid" and kind not in ("constant", "categorical"):
        raise ConfigError(f"{where}: grid search needs value or values, found distribution {kind}")
    if kind == "categorical" and not p["values"]:
        raise ConfigError(f"{where}: values is empty")
    if kind.endswith(("uniform", "uniform_values")) and not ("min" in p and "max" in p):
        raise ConfigError(f"{where}: distribution {kind} needs min and max")


def distribution(p: dict) -> str:
    """The distribution W&B infers for a parameter (explicit, value, values, or min/max types)."""
    if "distribution" in p:
        return str(p["distribution"])
    if "value" in p:
        return "constant"
    if "values" in p:
        return "categorical"
    if isinstance(p.get("min"), int) and isinstance(p.get("max"), int):
        return "int_uniform"
    return "uniform"


def trials(sweep: Sweep, count: Optional[int], seed: int = 0) -> list[Trial]:
    """The first ``count`` trials (a grid: all of them by default). Random trial k depends only on
    (seed, k), so a larger ``count`` later extends the same sequence."""
    method = sweep.method
    if method == "bayes":
        print(f"{sweep.path}: method bayes needs W&B's sweep server (wandb sweep {sweep.path} && wandb agent ID); "
              "running random search locally instead", flush=True)
        method = "random"
    if method == "grid":
        names = list(sweep.parameters)
        choices = [[p["value"]] if "value" in p else list(p["values"]) for p in sweep.parameters.values()]
        points = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
        return [Trial(i, p) for i, p in enumerate(points[:count] if count else points)]
    count = count or sweep.run_cap
    if not count:
        raise ConfigError(f"{sweep.path}: random search has no end; give --count N (or run_cap in the YAML)")
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        out.append(Trial(i, {k: DISTRIBUTIONS[distribution(p)](p, rng) for k, p in sweep.parameters.items()}))
    return out


def trial_state(run_dir: Path) -> str:
    """``done`` (finished), ``partial`` (a checkpoint to resume) or ``new``."""
    if any((run_dir / name).is_file() for name in DONE_FILES):
        return "done"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return "partial"
    return "new"


def trial_argv(sweep: Sweep, trial: Trial, run_dir: Path, extra: Sequence[str] = (), state: str = "new") -> list[str]:
    """The program's argv: the command's own flags, ``extra`` (sweep.py's ``-- FLAGS``), then the
    trial's ``--key=value`` flags (last, so they win), then the run directory."""
    at = sweep.command.index("${args}")
    before = [c for c in sweep.command[:at] if c not in DROPPED_MACROS]
    after = [c for c in sweep.command[at + 1:] if c not in DROPPED_MACROS]
    before = _strip_trial_wrapper(before)
    argv = [*before, *extra, *trial.flags(), *after, "--output-dir", str(run_dir)]
    if Path(sweep.program).name == "train.py":
        # W&B names and groups the trials; first, so the sweep's command can still override them
        argv = ["--run-name", f"{sweep.name}-{trial.name}", "--wandb-group", sweep.name, *argv]
        if state == "partial":
            argv += ["--resume", str(run_dir / "checkpoints" / "last.ckpt")]
    return argv


def _strip_trial_wrapper(tokens: list[str]) -> list[str]:
    """A command written for W&B as ``sweep.py --trial ${program} --sweep-dir DIR ...`` runs the
    program directly here (the local run directory comes from ``--output-dir``)."""
    out, skip = [], 0
    for i, token in enumerate(tokens):
        if skip:
            skip -= 1
            continue
        if token == "sweep.py" or token.endswith("/sweep.py"):
            continue
        if token == "--trial":  # followed by ${program}, dropped already
            continue
        if token == "--sweep-dir":
            skip = 1
            continue
        out.append(token)
    return out


def sweep_dir_of(sweep: Sweep) -> Path:
    """``--sweep-dir`` of a trial-wrapper command, else ``runs/<sweep name>``."""
    if "--sweep-dir" in sweep.command:
        return Path(sweep.command[sweep.command.index("--sweep-dir") + 1])
    return Path("runs") / sweep.name


def program_main(program: str) -> Callable[[list[str]], int]:
    """``main(argv) -> exit code`` of a script such as train.py or cv.py (repository-relative)."""
    if program in PACKAGE_PROGRAMS:
        return importlib.import_module(PACKAGE_PROGRAMS[program]).main
    path = Path(program)
    path = path if path.is_absolute() else (REPO_ROOT / path if (REPO_ROOT / path).is_file() else path.resolve())
    if not path.is_file():
        raise ConfigError(f"program {program} not found (looked for {path})")
    name = path.stem
    module = sys.modules.get(name)
    if module is None or Path(getattr(module, "__file__", "") or "").resolve() != path.resolve():
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # cv.py's own `import train` finds the same module
        spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if not callable(main):
        raise ConfigError(f"program {path} has no main(argv) function; sweep.py runs train.py, cv.py or scripts like them")
    return main


class StopAfterTrial:
    """SIGINT handler for the trial loop: the first Ctrl-C asks to stop once the current trial is
    done; a second one interrupts at once (KeyboardInterrupt). Worker processes forked from here
    inherit the handler and ignore it."""

    def __init__(self) -> None:
        self.requested = False
        self._pid = os.getpid()
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            return
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after the current trial (Ctrl-C again to stop now)", flush=True)

    def __enter__(self) -> "StopAfterTrial":
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)


def run_sweep(
    path: Path,
    count: Optional[int] = None,
    sweep_dir: Optional[Path] = None,
    extra: Sequence[str] = (),
    seed: int = 0,
    leaderboard: bool = True,
) -> int:
    """Run the sweep's missing trials, one after another. Exit code 0 when every trial finished,
    1 when one failed (the others still ran), 130 when Ctrl-C stopped the sweep early."""
    from drivseg.loggers import finish_wandb

    sweep = load_sweep(path)
    out = Path(sweep_dir) if sweep_dir else sweep_dir_of(sweep)
    todo = trials(sweep, count, seed)
    main = program_main(sweep.program)
    out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    stopped = False
    with StopAfterTrial() as stop:
        for trial in todo:
            run_dir = out / trial.name
            state = trial_state(run_dir)
            if state == "done":
                print(f"[{trial.index + 1}/{len(todo)}] {trial.name}: finished earlier, skipped", flush=True)
                continue
            argv = trial_argv(sweep, trial, run_dir, extra, state)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / TRIAL_FILE).write_text(yaml.safe_dump(
                {"sweep": str(sweep.path), "index": trial.index, "params": trial.params, "argv": argv}, sort_keys=False))
            print(f"[{trial.index + 1}/{len(todo)}] {trial.name}: {sweep.program} {' '.join(argv)}", flush=True)
            start = time.perf_counter()
            try:
                code = main(argv)
            except Exception as err:  # one failing trial must not end the sweep
                print(f"{trial.name} failed: {type(err).__name__}: {err}", flush=True)
                code = 1
            finally:
                finish_wandb()
            if code != 0:
                failed.append(trial.name)
            print(f"{trial.name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
            if stop.requested:
                stopped = True
                left = sum(trial_state(out / t.name) != "done" for t in todo)
                print(f"Stopped after {trial.name}: {left} trial(s) left; run the same command again to continue", flush=True)
                break
    if leaderboard:
        print_leaderboard(sweep, out)
    if failed:
        print(f"{len(failed)} trial(s) failed: {', '.join(failed)}")
    return STOPPED_EXIT_CODE if stopped else (1 if failed else 0)


def print_leaderboard(sweep: Sweep, folder: Path) -> Optional[str]:
    """The leaderboard of the finished trials, by the sweep's metric (written next to them)."""
    if not any(trial_state(d) == "done" for d in folder.iterdir() if d.is_dir()):
        print(f"No finished trial under {folder} yet.")
        return None
    from drivseg.leaderboard import leaderboard

    text = leaderboard(folder, metric=sweep.metric_name)
    print(f"\nLeaderboard of {folder} (by {sweep.metric_name or 'val/oof mIoU'}):\n{text}")
    return text


# ---------------------------------------------------------------------------- agent trial wrapper
def run_agent_trial(program: str, sweep_dir: Path, argv: Sequence[str]) -> int:
    """One trial started by a W&B agent, in a run directory of its own: ``DIR/<W&B run id>``."""
    trial = os.environ.get("WANDB_RUN_ID") or time.strftime("%Y%m%d-%H%M%S")
    return program_main(program)([*argv, "--output-dir", str(Path(sweep_dir) / trial)])
