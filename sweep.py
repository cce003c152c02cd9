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

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.sweep import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
