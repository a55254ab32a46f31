"""A copy of the working tree as plain files: what a fresh checkout of it would hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.check.engine import REPO_ROOT


def copy_working_tree(root: Path) -> Path:
    """Copies every file git tracks or would track (ignored files left out) under `root`; returns `root`."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if (REPO_ROOT / name).is_file():  # a deleted but still tracked file is listed too
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)
    return root
