"""Step 05: the solution passes, the skeleton fails cleanly, the zoo gets the intended hints, --plot draws."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.check.engine import REPO_ROOT
from tests.zoo_helpers import assert_zoo_case, check_file, failures, zoo_cases

SOLUTION = REPO_ROOT / "solutions" / "solution_05.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", zoo_cases("05"))
def test_zoo(path):
    assert_zoo_case("05", path)


def test_zoo_is_big_enough():
    names = [case.values[0].name for case in zoo_cases("05")]
    assert sum(name.startswith("bad_") for name in names) >= 6
    assert sum(name.startswith("ok_") for name in names) >= 2


def test_solution_passes_every_check_through_the_cli():
    result = subprocess.run([sys.executable, "-m", "tests.check", "05", "--solution"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "❌" not in result.stdout and result.stdout.strip().endswith(" 0 failed")


def test_skeleton_fails_cleanly_through_the_cli(tmp_path):
    figure = tmp_path / "figure.png"
    result = subprocess.run([sys.executable, "-m", "tests.check", "05", "--plot", str(figure)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Running checks for Step 05:")
    assert "steps/step_05.py" in lines[1]
    assert "❌" in result.stdout and "No figure written" in result.stdout
    assert lines[-1].endswith(" failed") and not lines[-1].endswith(" 0 failed")
    assert not figure.exists()


def test_plot_writes_a_png_of_both_curves(tmp_path):
    import matplotlib.image

    figure = tmp_path / "nested" / "pre_post_ln.png"
    report = check_file("05", SOLUTION, "--plot", str(figure))
    assert report.passed, failures(report)
    assert any(str(figure) in note for note in report.notes)
    assert figure.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(figure)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert np.std(pixels[..., :3]) > 0.05  # not a blank canvas


def test_experiment_numbers_show_the_published_trend():
    """The solution's own numbers, judged like the checklist does, with the margins it relies on."""
    from tests.check.step_05 import EXPERIMENT, POST_GROWTH, PRE_SPREAD

    code = ("import json, sys; sys.path.insert(0, 'solutions'); import solution_05 as s; "
            f"print(json.dumps(s.run_experiment(**{EXPERIMENT!r})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    post, pre = numbers["post"]["grad_norms"], numbers["pre"]["grad_norms"]
    assert post[-1] / post[0] > POST_GROWTH + 0.2
    assert max(pre) / min(pre) < PRE_SPREAD - 0.1
    assert all(abs(v - 1) < 1e-3 for v in numbers["post"]["hidden_rms"])
