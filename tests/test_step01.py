"""Step 01: the solution passes, the skeleton fails cleanly, and the zoo gets the intended hints."""

import subprocess
import sys

import pytest

from tests.check.engine import REPO_ROOT
from tests.zoo_helpers import assert_zoo_case, check_file, checks_no_wrong_file_fails, failures, zoo_cases


@pytest.mark.parametrize("path", zoo_cases("01"))
def test_zoo(path):
    assert_zoo_case("01", path)


def test_zoo_is_big_enough():
    names = [case.values[0].name for case in zoo_cases("01")]
    assert sum(name.startswith("bad_") for name in names) >= 10
    assert sum(name.startswith("ok_") for name in names) >= 2


def test_every_check_is_failed_by_some_wrong_file():
    assert checks_no_wrong_file_fails("01") == set()


def test_solution_passes_every_check():
    report = check_file("01", REPO_ROOT / "solutions" / "solution_01.py")
    assert report.passed, failures(report)


def test_skeleton_fails_cleanly_through_the_cli():
    result = subprocess.run([sys.executable, "-m", "tests.check", "01"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Running checks for Step 01:")
    assert "steps/step_01.py" in lines[1]
    assert lines[-1].endswith(" failed") and not lines[-1].endswith(" 0 failed")


def test_seed_numbers_are_the_seed_spec():
    """The checklist's expected values are the seed's, not numbers our code produced."""
    seed = (REPO_ROOT.parent / "shared" / "seeds")
    if not seed.exists():
        pytest.skip("the seed documents are not beside this clone")
    text = "\n".join(p.read_text(errors="replace") for p in seed.glob("*.txt"))
    for number in ("-1.224745", "5.674235", "-0.724745", "[-1.5,  0.5]"):
        assert number in text


def test_vectorised_check_counts_rows_not_lines(tmp_path):
    """A long but loop-free forward is vectorised; a short loop over rows is not."""
    long_body = "\n".join(f"    tmp{i} = x * {i}" for i in range(40))
    long_file = tmp_path / "long.py"
    long_file.write_text("import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n" + long_body + "\n"
                         "    mean = x.mean(axis=1, keepdims=True)\n"
                         "    y = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + eps) * gamma + beta\n"
                         "    return y, None\n")
    report = check_file("01", long_file)
    assert report.passed, failures(report)
