"""Run a W&B sweep YAML locally, no account needed: grid or random search, one run per trial.

    python sweep.py configs/sweeps/camvid_lr_loss.yaml --count 8
    python sweep.py configs/sweeps/camvid_arch_encoder.yaml -- --data-root ../data/camvid --max-time 10m
    wandb sweep configs/sweeps/camvid_lr_loss.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID   # the same YAML on W&B

YAML -> trials (grid: every combination; random: --count draws, reproducible with --seed; bayes:
random locally, say so) -> each trial = program.main(--key=value flags as a W&B agent writes them)
in runs/<sweep>/<trial>/ -> the leaderboard of the trials (leaderboard.md/csv/png there). Running
the same command again runs only the trials that have not finished; Ctrl-C stops after the
current trial. ``--trial PROGRAM --sweep-dir DIR ARGS`` is the form a W&B agent runs for programs
that need one folder per trial (cv.py): DIR/<W&B run id>.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from drivseg.entry import run_entry_point
from drivseg.sweep import run_agent_trial, run_sweep


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sweep.py", description=__doc__.splitlines()[0],
                                epilog="Flags after -- go to every trial (before the sweep's own values, which win).")
    p.add_argument("sweep", type=Path, help="sweep YAML (configs/sweeps/*.yaml)")
    p.add_argument("--count", type=int, help="trials of the sweep to run (grid: all by default; random: required "
                                              "unless the YAML has run_cap)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    p.add_argument("--output-dir", type=Path, help="folder of the trials (default runs/<sweep name>)")
    p.add_argument("--no-leaderboard", action="store_true", help="do not print / write the leaderboard")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--trial"]:  # a W&B agent's trial: --trial PROGRAM --sweep-dir DIR ARGS...
        if len(argv) < 4 or argv[2] != "--sweep-dir":
            print("usage: sweep.py --trial PROGRAM --sweep-dir DIR [program flags]", file=sys.stderr)
            return 2
        return run_agent_trial(argv[1], Path(argv[3]), argv[4:])
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    args = parse_args(argv)
    return run_sweep(args.sweep, args.count, args.output_dir, extra, args.seed, not args.no_leaderboard)


def run() -> None:
    """Console command ``drivseg-sweep``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.sweep
    run()
