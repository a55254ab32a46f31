"""A copy of the working tree as plain files: what a fresh checkout of it would hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT

# In make's environment: the copy's .venv (this environment, see `checkout_with_this_venv`) counts as up to date,
# so `make venv` installs nothing.
VENV_UP_TO_DATE = {"MAKEFLAGS": "o .venv/.ready"}


def copy_working_tree(root: Path) -> Path:
    """Copies every file git tracks or would track (ignored files left out) under `root`; returns `root`.

    The learner's progress (`.checker/`) stays behind: a copy starts as a fresh clone does."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if name.startswith(".checker/"):
            continue
        if (REPO_ROOT / name).is_file():  # a deleted but still tracked file is listed too
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    return root


def checkout_with_this_venv(root: Path) -> Path:
    """The working tree copied under `root` (what a runner's checkout holds), with the environment running the
    tests as its .venv, where `make venv` would have put one. Skips the test outside such an environment."""
    if not (Path(sys.prefix) / ".ready").exists():  # make would build a .venv into this environment
        pytest.skip("runs in the .venv that `make` creates (these tests are running elsewhere, e.g. pixi's)")
    copy_working_tree(root)
    (root / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return root
