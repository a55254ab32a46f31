"""Step 02: the solution passes, the skeleton fails cleanly, and the zoo gets the intended hints."""

import subprocess
import sys

import pytest

from tests.check.engine import REPO_ROOT
from tests.zoo_helpers import assert_zoo_case, check_file, checks_no_wrong_file_fails, failures, zoo_cases


@pytest.mark.parametrize("path", zoo_cases("02"))
def test_zoo(path):
    assert_zoo_case("02", path)


def test_zoo_is_big_enough():
    names = [case.values[0].name for case in zoo_cases("02")]
    assert sum(name.startswith("bad_") for name in names) >= 10
    assert sum(name.startswith("ok_") for name in names) >= 2


def test_every_check_is_failed_by_some_wrong_file():
    assert checks_no_wrong_file_fails("02") == set()


def test_solution_passes_every_check():
    report = check_file("02", REPO_ROOT / "solutions" / "solution_02.py")
    assert report.passed, failures(report)


def test_skeleton_fails_cleanly_through_the_cli():
    result = subprocess.run([sys.executable, "-m", "tests.check", "02"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Running checks for Step 02:")
    assert "steps/step_02.py" in lines[1]
    assert lines[-1].endswith(" failed") and not lines[-1].endswith(" 0 failed")
