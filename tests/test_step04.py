"""Step 04: the solution passes, the skeleton fails cleanly, and the zoo gets the intended hints."""

import subprocess
import sys

import pytest

from tests.check.engine import REPO_ROOT
from tests.zoo_helpers import assert_zoo_case, check_file, failures, zoo_cases


@pytest.mark.parametrize("path", zoo_cases("04"))
def test_zoo(path):
    assert_zoo_case("04", path)


def test_zoo_is_big_enough():
    names = [case.values[0].name for case in zoo_cases("04")]
    assert sum(name.startswith("bad_") for name in names) >= 10
    assert sum(name.startswith("ok_") for name in names) >= 3


def test_solution_passes_every_check_through_the_cli():
    result = subprocess.run([sys.executable, "-m", "tests.check", "04", "--solution"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "❌" not in result.stdout and result.stdout.strip().endswith(" 0 failed")


def test_skeleton_fails_cleanly_through_the_cli():
    result = subprocess.run([sys.executable, "-m", "tests.check", "04"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Running checks for Step 04:")
    assert "steps/step_04.py" in lines[1]
    assert "❌" in result.stdout
    assert lines[-1].endswith(" failed") and not lines[-1].endswith(" 0 failed")


def test_seed_numbers_are_the_seed_spec():
    """The expected values of the seed examples are the seeds' own numbers."""
    from tests.check.step_04 import SEED_003_X, SEED_003_Y

    seeds = REPO_ROOT.parent / "shared" / "seeds"
    if not seeds.exists():
        pytest.skip("the seed documents are not beside this clone")
    text = "\n".join(p.read_text(errors="replace") for p in seeds.glob("*.txt"))
    assert "[[[-1.2649, -0.6324,  0.6324,  1.2649]]]" in text and "[[[2.0, 3.0, 5.0, 6.0]]]" in text
    assert SEED_003_Y == [[[-1.2649, -0.6324, 0.6324, 1.2649]]] and SEED_003_X == [[[2.0, 3.0, 5.0, 6.0]]]
    assert "LayerNorm(512)" in text and "torch.randn(4, 10, 512)" in text


def test_builtin_hint_points_at_the_learners_line():
    path = REPO_ROOT / "tests" / "zoo" / "step_04" / "bad_uses_functional.py"
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "F.layer_norm(" in text)
    report = check_file("04", path)
    [result] = [r for r in report.results if r.name.startswith("does not use nn.LayerNorm")]
    assert not result.passed
    assert f"line {line}: `y = F.layer_norm(" in result.message, result.message
    others = [r for r in report.results if r is not result]
    assert all(r.passed for r in others), failures(report)  # the ban is lifted after its check
