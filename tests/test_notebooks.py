"""Every notebook in notebooks/ runs headless, and notebooks are stored without outputs.

Convention for notebooks (follow it when you add one; the runner picks up every ``*.ipynb``):

- **Find the repository through ``DRIVSEG_REPO``**: the first code cell does
  ``REPO = Path(os.environ.get("DRIVSEG_REPO", Path.cwd().parent))`` and
  ``sys.path.insert(0, str(REPO / "src"))``. Jupyter starts a notebook in ``notebooks/``, so the
  default works there; the runner executes each notebook with its working directory in a fresh
  ``tmp_path`` (whatever a notebook writes lands there) and sets ``DRIVSEG_REPO``.
- **Inputs come from ``DRIVSEG_NOTEBOOK_*`` environment variables** read with defaults that work
  out of the box (the synthetic data, no checkpoint): ``DRIVSEG_NOTEBOOK_DATA`` (dataset name),
  ``DRIVSEG_NOTEBOOK_ROOT`` (its folder), ``DRIVSEG_NOTEBOOK_CKPT`` (a checkpoint from train.py).
  The runner sets all three to a tiny CamVid-layout dataset and a one-epoch ``tiny_fcn``
  checkpoint (``tests.conftest.train_tiny_checkpoint``), so a notebook's checkpoint branch runs
  too. Need another input? Add a variable here and to ``notebook_env`` below.
- **Time limit**: keep a notebook under 120 s on 2 CPU cores; one that needs longer says so in its
  metadata, ``{"drivseg": {"timeout_seconds": 300}}`` (then keep it under a few minutes). Going
  over the limit is reported as a warning with the time taken, not a failure: on a shared machine
  a wall-clock bound inside a test fails for reasons the notebook does not own. What fails is a
  hang: a cell, or the whole notebook, running longer than ``HANG_FACTOR`` times the limit.
  Kernels run with one thread per process (``OMP_NUM_THREADS=1``): small tensors gain nothing
  from more on a shared CPU.
- **Store notebooks without outputs** (``jupyter nbconvert --clear-output --inplace NB.ipynb``,
  or "Clear All Outputs" before saving): outputs bloat diffs and go stale. Checked below.
- Plots are inline matplotlib; a cell fails the test by raising, so ``assert`` the claims a
  notebook makes (measured receptive field == formula, ...) to keep them true.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, train_tiny_checkpoint

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
DEFAULT_TIMEOUT = 120  # seconds per notebook
HANG_FACTOR = 3  # a cell or the whole notebook past this many limits is a hang, not a slow machine


def timeout_of(path: Path) -> int:
    """The notebook's own limit from its metadata, else the default."""
    meta = nbformat.read(path, as_version=4).metadata.get("drivseg", {})
    return int(meta.get("timeout_seconds", DEFAULT_TIMEOUT))


@pytest.fixture(scope="module")
def notebook_inputs(tmp_path_factory) -> dict[str, str]:
    root, ckpt = train_tiny_checkpoint(tmp_path_factory.mktemp("notebook_inputs"))
    return {"DRIVSEG_NOTEBOOK_DATA": "camvid", "DRIVSEG_NOTEBOOK_ROOT": str(root),
            "DRIVSEG_NOTEBOOK_CKPT": str(ckpt)}


@pytest.fixture
def notebook_env(notebook_inputs, monkeypatch) -> None:
    """The kernel inherits this process's environment."""
    for key, value in {**notebook_inputs, "DRIVSEG_REPO": str(REPO), "OMP_NUM_THREADS": "1",
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline"}.items():
        monkeypatch.setenv(key, value)


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"explore_dataset.ipynb", "convolutions_and_upsampling.ipynb"}


@pytest.mark.slow
@pytest.mark.usefixtures("notebook_env")
@pytest.mark.parametrize(
    "path",
    # the hard stop (pytest-timeout) leaves a minute for the kernel to start and shut down
    [pytest.param(p, id=p.stem, marks=pytest.mark.timeout(HANG_FACTOR * timeout_of(p) + 60))
     for p in NOTEBOOKS],
)
def test_notebook_runs_headless(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    limit = timeout_of(path)
    client = NotebookClient(nb, timeout=HANG_FACTOR * limit, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # the kernel's cwd
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the cell's traceback when a cell fails
    seconds = time.perf_counter() - start
    if seconds > limit:
        warnings.warn(f"{path.name} took {seconds:.0f} s, over its {limit} s limit: make it faster or raise "
                      f"its timeout_seconds", stacklevel=1)
    figures = sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
    assert figures > 0, f"{path.name} drew no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them "
                       f"(jupyter nbconvert --clear-output --inplace {path.relative_to(REPO)})")
