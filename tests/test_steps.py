"""Every step, the same promises: the skeleton fails cleanly, the solution passes, each zoo case gets
its verdict and hint, and every check is failed by some wrong implementation."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import pytest

from tests.check.engine import REPO_ROOT, available_steps, load_checklist
from tests.check.printer import ReportPrinter, same_hint_key
from tests.check.steps import STEPS
from tests.zoo_helpers import (
    EXTRA_OPTIONS,
    assert_zoo_case,
    checks_no_wrong_file_fails,
    cli_json,
    expectation,
    machine_skips,
    zoo_cases,
    zoo_report,
)

# The tiers (pyproject.toml), from each step's record: MAX steps compile kernels, step 06 compiles Mojo, PyTorch zoos
# take minutes.
MARKS = {"fast": [], "slow": [pytest.mark.slow], "max": [pytest.mark.max], "mojo": [pytest.mark.max, pytest.mark.mojo]}
STEP_MARKS = {record.number: MARKS[record.tier] for record in STEPS}


def steps(cost_free: bool = False) -> list:
    return [
        pytest.param(step, marks=[] if cost_free else STEP_MARKS.get(step, []), id=step) for step in available_steps()
    ]


def all_zoo_cases() -> list:
    return [
        pytest.param(*p.values, marks=STEP_MARKS.get(p.values[0], []), id=p.id)
        for step in available_steps()
        for p in zoo_cases(step)
    ]


def run_cli(step: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.check", step, *EXTRA_OPTIONS.get(step, ()), "--strict", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600)


def fingerprint(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("step, case", all_zoo_cases())
def test_zoo(step, case):
    assert_zoo_case(step, case)


@pytest.mark.parametrize("step, case", all_zoo_cases())
def test_zoo_report_says_each_hint_once(step, case):
    """A cause is said once: no hint is printed twice, numbers aside (the report test_zoo computed)."""
    report, out = zoo_report(step, case), io.StringIO()
    printer = ReportPrinter(out=out)
    for result in report.results:
        printer.result(result)
    printer.finish(report, step)
    hints = [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("↳")]
    repeated = [hint for hint in hints if [same_hint_key(h) for h in hints].count(same_hint_key(hint)) > 1]
    assert not repeated, out.getvalue()


@pytest.mark.parametrize("step", steps(cost_free=True))
def test_zoo_is_big_enough(step):
    cases = [case for _, case in (p.values for p in zoo_cases(step))]
    wrong = sum(expectation(case) is not None for case in cases)
    assert wrong >= 10 and len(cases) - wrong >= 2, f"step {step}: {wrong} wrong and {len(cases) - wrong} right cases"


@pytest.mark.parametrize("step", steps())
def test_every_check_is_failed_by_some_wrong_file(step):
    assert checks_no_wrong_file_fails(step) == set()


@pytest.mark.parametrize("step", steps())
def test_skeleton_fails_cleanly_and_is_left_untouched(step):
    steps_folder = REPO_ROOT / "steps"
    before = fingerprint(steps_folder)
    result = run_cli(step, "--file", str(REPO_ROOT / load_checklist(step).skeleton))  # --file: no progress recorded
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Running checks for Step {step}:")
    assert load_checklist(step).skeleton in lines[1]
    assert "❌" in result.stdout and " failed" in lines[-1] and " 0 failed" not in lines[-1]
    assert fingerprint(steps_folder) == before, "checking the skeleton wrote files into steps/"


@pytest.mark.parametrize("step", steps())
def test_solution_passes_every_check(step):
    solutions = REPO_ROOT / "solutions"
    before = fingerprint(solutions)
    code, report = cli_json(step, "--solution")
    assert code == 0, report
    assert report["passed"] is True and report["step"] == step
    assert len(report["checks"]) == 1 + len(load_checklist(step).checks)
    unrunnable = machine_skips(step)  # e.g. the GPU checks on a machine without a GPU: skipped, never passed
    assert all(
        check["status"] == "passed" or (check["status"] == "skipped" and check["name"] in unrunnable)
        for check in report["checks"]
    ), report["checks"]
    assert fingerprint(solutions) == before, "checking the solution wrote files next to it"
