"""Step 05 beyond the shared promises of tests/test_steps.py: --plot draws, the experiment shows the trend."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.check.engine import REPO_ROOT
from tests.zoo_helpers import check_file, failures

pytestmark = pytest.mark.slow

SOLUTION = REPO_ROOT / "solutions" / "solution_05.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_skeleton_writes_no_figure(tmp_path):
    figure = tmp_path / "figure.png"
    result = subprocess.run(
        [sys.executable, "-m", "tests.check", "05", "--file", "steps/step_05.py", "--plot", str(figure)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "No figure written" in result.stdout
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
    from tests.check.step_05.checklist import EXPERIMENT, POST_GROWTH, PRE_SPREAD

    code = (
        "import json, sys; sys.path.insert(0, 'solutions'); import solution_05 as s; "
        f"print(json.dumps(s.run_experiment(**{EXPERIMENT!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    post, pre = numbers["post"]["grad_norms"], numbers["pre"]["grad_norms"]
    assert post[-1] / post[0] > POST_GROWTH + 0.2
    assert max(pre) / min(pre) < PRE_SPREAD - 0.1
    assert all(abs(v - 1) < 1e-3 for v in numbers["post"]["hidden_rms"])


ZOO = REPO_ROOT / "tests" / "zoo" / "step_05"
EXPERIMENT_CHECKS = ("Post-LN at initialisation", "Pre-LN at initialisation", "forward view")


def test_an_in_place_residual_is_named_wherever_it_shows():
    """x += ... breaks the backward of every later check that trains through the block: each names the block's write,
    none prints autograd's own error alone, and the experiment is not judged on it."""
    report = check_file("05", ZOO / "bad_pre_in_place_residual.py", "--verbose")
    failed = [r for r in report.results if r.status == "failed"]
    assert failed, failures(report)
    for result in failed:
        named = "writes into its input" in result.message or result.message.startswith("Not run: PreLNBlock is wrong")
        assert named, f"{result.name}: {result.message}"
    assert all(not r.passed for r in report.results if r.name.startswith(EXPERIMENT_CHECKS))


def test_the_experiment_is_not_judged_on_broken_foundations():
    """A shared block and a wrong Pre-LN block: every check of the experiment says what it waits for, none passes."""
    report = check_file("05", ZOO / "bad_shared_block_broken_pre.py")
    experiment = [r for r in report.results if r.name.startswith(EXPERIMENT_CHECKS)]
    assert len(experiment) == 3
    assert all(r.status == "failed" and r.message.startswith("Not run: ") for r in experiment), failures(report)
    assert all(r.cause == experiment[0].cause for r in experiment)  # one cause: the report tells it once


def test_a_skeleton_cause_is_told_once_across_the_foundations():
    """The skeleton's Pre-LN TODO fails the residual and gradient_norms checks too: they share its cause with the
    experiment checks, so the report shows the TODO once and counts the rest."""
    report = check_file("05", REPO_ROOT / "steps" / "step_05.py")
    pre = next(r for r in report.results if r.name.startswith("PreLNBlock computes"))
    grouped = [r for r in report.results if r.cause == pre.cause and r is not pre]
    names = {r.name.split(":")[0] for r in grouped}
    assert {"the residual connection is there", "Post-LN at initialisation"} <= names, failures(report)
