"""Where the project's files are: the repository checkout, or the installed package.

The YAML configs live in the repository's top-level ``configs/`` folder. A checkout (and an editable
install, ``pip install -e .``) reads them there; a regular install (``pip install .``) ships the
same folder inside the package as ``drivseg/configs`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]  # src/drivseg -> the checkout (meaningless in an installed package)


def configs_dir() -> Path:
    """``configs/`` of the checkout when there is one, else the copy installed with the package."""
    checkout = REPO_ROOT / "configs"
    if (checkout / "default.yaml").is_file():
        return checkout
    return PACKAGE_DIR / "configs"
