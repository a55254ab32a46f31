"""Verdicts hold on a busy machine: with two processes spinning beside the checker on a two-core
machine, correct solutions still pass every check, and a hang is still caught by the CPU limit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.check.engine import REPO_ROOT

pytestmark = pytest.mark.slow
HOGS = 2  # as many as the machine this project's CI runs on has cores


@pytest.fixture
def busy_machine():
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def checker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.check", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800
    )


@pytest.mark.parametrize(
    "step",
    [
        "01",
        "02",
        "04",
        "05",
        pytest.param("03", marks=pytest.mark.max),
        pytest.param("06", marks=[pytest.mark.max, pytest.mark.mojo]),
    ],
)
def test_a_correct_solution_passes_on_a_busy_machine(busy_machine, step):
    result = checker(step, "--solution", *(["--device", "cpu"] if step in ("03", "06") else []))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_hang_is_still_caught_on_a_busy_machine(busy_machine, tmp_path):
    spinning = tmp_path / "spinning.py"
    spinning.write_text("def layernorm_forward(x, gamma, beta, eps=1e-5):\n    while True:\n        pass\n")
    result = checker("01", "--file", str(spinning))
    assert result.returncode == 1
    assert "s of CPU (the limit is 5 s), an infinite loop or far too slow" in result.stdout
