"""Children of the test process start inside this virtual environment, even after MAX was imported."""

import subprocess
import sys


def test_importing_max_in_this_process():
    import max.experimental.nn  # noqa: F401  (sets PYTHONEXECUTABLE/PYTHONPATH at the C level)


def test_a_child_started_afterwards_still_sees_torch():
    result = subprocess.run([sys.executable, "-c", "import torch, sys; print(sys.prefix)"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sys.prefix
