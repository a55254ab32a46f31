"""Classroom 50: the autograder (classroom50/autograder.py) run as Classroom 50's runner runs it, in a fresh copy
of the repository, and the checker command behind it (`python -m tests.check classroom50`).

Every result.json is held to the contract the runner and its score collection validate (schema
classroom50/result/v1: fields, types, sums). The steps graded are the NumPy ones: they run in seconds.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.check.classroom50 import STEP_POINTS, StepGrades, result_test, split_points
from tests.check.engine import REPO_ROOT, available_steps, load_checklist
from tests.working_tree import VENV_UP_TO_DATE, checkout_with_this_venv

AUTOGRADER = REPO_ROOT / "classroom50" / "autograder.py"
RUNNER = {  # what Classroom 50's runner sets (the GITHUB_* ones, a few of them)
    "CLASSROOM": "ml-fall-2026",
    "SUBMISSION_TAG": "submit/2026-09-14T10-03-55Z-1a2b3c4",
    "COMMIT_URL": "https://github.com/ml-fall-2026/ml-fall-2026-layernorm-alice/commit/1a2b3c4",
    "RELEASE_URL": "https://github.com/ml-fall-2026/ml-fall-2026-layernorm-alice/releases/tag/submit%2F2026",
    "REVIEW_URL": "https://github.com/ml-fall-2026/ml-fall-2026-layernorm-alice/compare/0f0f0f0...1a2b3c4",
    "USERNAME": "alice",
    "OWNER": "alice",
    "ASSIGNMENT_TYPE": "individual",
    "GITHUB_REPOSITORY": "ml-fall-2026/ml-fall-2026-layernorm-alice",
    "GITHUB_SHA": "1a2b3c4",
    "GITHUB_ACTOR": "alice",
}
HALF_LIMITS = {"LAYERNORM_TIMEOUT_SCALE": "0.5"}  # step 01's limits halved: a hang costs 2.5 CPU seconds
DBETA_SIGN = ("dbeta = dy.sum(axis=0)", "dbeta = -dy.sum(axis=0)")
UNBIASED = (
    "var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
    "var = ((x - mean) ** 2).sum(axis=1, keepdims=True) / (x.shape[1] - 1)",
)
FORWARD = "    # ANCHOR: forward\n"
HANG = "    while True:\n        pass\n"


# -- the contract ------------------------------------------------------------------------------------
def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate(result: dict, assignment: str) -> None:
    """result.json as Classroom 50 accepts it (its runner's and collector's checks), for this submission."""
    assert result["schema"] == "classroom50/result/v1"
    for key, variable in [
        ("classroom", "CLASSROOM"),
        ("submission", "SUBMISSION_TAG"),
        ("commit", "COMMIT_URL"),
        ("release", "RELEASE_URL"),
        ("review", "REVIEW_URL"),
    ]:
        assert result[key] == RUNNER[variable]
    assert result["assignment"] == assignment
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result["datetime"])
    assert is_count(result["score"]) and is_count(result["max-score"])
    assert result["score"] <= result["max-score"]
    tests = result["tests"]
    assert isinstance(tests, list) and tests
    for test in tests:
        assert isinstance(test["test-name"], str) and test["test-name"]
        assert isinstance(test["passed"], bool)
        assert is_count(test["score"]) and is_count(test["max-score"]) and test["score"] <= test["max-score"]
        assert test["score"] in (0, test["max-score"])  # a check is earned whole or not at all
        assert test["passed"] == (test["status"] in ("passed", "skipped"))
    assert len({test["test-name"] for test in tests}) == len(tests)
    assert result["score"] == sum(test["score"] for test in tests)
    assert result["max-score"] == sum(test["max-score"] for test in tests)


def check_names(step: str) -> list[str]:
    checklist = load_checklist(step)
    return [f"Step {step}: step_{step}.py imports", *(f"Step {step}: {check.name}" for check in checklist.checks)]


# -- running it as the runner does ---------------------------------------------------------------------
@pytest.fixture
def checkout(tmp_path) -> Path:
    return checkout_with_this_venv(tmp_path / "student")


def solve(checkout: Path, step: str, *, replace: tuple[str, str] | None = None, before_forward: str = "") -> None:
    """The step's solution in the learner's file, with one change."""
    source = (REPO_ROOT / "solutions" / f"solution_{step}.py").read_text()
    if replace:
        assert replace[0] in source
        source = source.replace(*replace)
    if before_forward:
        assert FORWARD in source
        source = source.replace(FORWARD, before_forward + FORWARD, 1)
    (checkout / "steps" / f"step_{step}.py").write_text(source)


def autograde(checkout: Path, assignment: str, **settings: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    """Runs the autograder from a folder of its own (as the runner does, from the classroom's bundle) in the
    checkout, with the runner's variables; returns (the run, result.json, release-body.md)."""
    bundle = checkout.parent / "bundle"
    bundle.mkdir(exist_ok=True)
    shutil.copy(AUTOGRADER, bundle / "autograder.py")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MAKE", "LAYERNORM_"))}
    env.update(RUNNER, ASSIGNMENT=assignment, **VENV_UP_TO_DATE, **settings)
    run = subprocess.run(
        [sys.executable, str(bundle / "autograder.py")],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((checkout / "result.json").read_text(encoding="utf-8"))
    validate(result, assignment)
    return run, result, (checkout / "release-body.md").read_text(encoding="utf-8")


def by_name(result: dict) -> dict[str, dict]:
    return {test["test-name"]: test for test in result["tests"]}


# -- the autograder ----------------------------------------------------------------------------------
def test_a_solved_step_earns_every_point(checkout):
    solve(checkout, "01")
    _, result, body = autograde(checkout, "layernorm-step-01")
    assert [test["test-name"] for test in result["tests"]] == check_names("01")  # one test per check, this step's
    assert all(test["passed"] and test["status"] == "passed" for test in result["tests"])
    assert result["score"] == result["max-score"] == STEP_POINTS["01"]
    assert f"LayerNorm from scratch: {STEP_POINTS['01']}/{STEP_POINTS['01']}" in body
    assert "✅ | vectorised: no Python loop over rows |" in body and "❌" not in body


def test_one_mistake_earns_partial_credit_and_the_hint(checkout):
    solve(checkout, "02", replace=DBETA_SIGN)
    run, result, body = autograde(checkout, "layernorm-step-2")
    tests = by_name(result)
    assert list(tests) == check_names("02")
    assert 0 < result["score"] < result["max-score"] == STEP_POINTS["02"]
    wrong = tests["Step 02: dbeta matches the oracle (random dy)"]
    assert (wrong["passed"], wrong["score"], wrong["status"]) == (False, 0, "failed")
    assert wrong["max-score"] > 0 and "dbeta has the wrong sign" in wrong["hint"]
    right = tests["Step 02: dx matches the oracle (random dy, random gamma)"]
    assert right["passed"] and right["score"] == right["max-score"] > 0 and "hint" not in right
    assert result["max-score"] - result["score"] == sum(t["max-score"] for t in tests.values() if not t["passed"])
    assert re.search(r"\| ❌ \| dbeta matches the oracle \(random dy\) \| 0/\d+ \| dbeta has the wrong sign", body)
    assert "dbeta has the wrong sign" in run.stdout  # the job's log has the report too

    # Check names only: the same grades, no hint anywhere a student can read.
    (checkout / "result.json").unlink()
    run, named, body = autograde(checkout, "layernorm-step-2", LAYERNORM_FEEDBACK="names")
    assert [(t["test-name"], t["score"], t["max-score"], t["status"]) for t in named["tests"]] == [
        (t["test-name"], t["score"], t["max-score"], t["status"]) for t in result["tests"]
    ]
    assert not any("hint" in test for test in named["tests"])
    assert "wrong sign" not in body + run.stdout + run.stderr
    assert "| ❌ | dbeta matches the oracle (random dy) |" in body


@pytest.mark.slow  # waits for a time limit on purpose
def test_an_infinite_loop_still_gets_a_result(checkout):
    solve(checkout, "01", before_forward=HANG)
    run, result, body = autograde(checkout, "layernorm-step-01", **HALF_LIMITS)
    assert result["score"] < result["max-score"] == STEP_POINTS["01"]
    assert by_name(result)["Step 01: step_01.py imports"]["passed"]  # what ran before the loop still counts
    hung = by_name(result)[check_names("01")[1]]
    assert not hung["passed"] and "No answer within the time limit" in hung["hint"]
    assert "No answer within the time limit" in body


@pytest.mark.slow  # waits for a time limit on purpose
def test_the_time_limit_stops_grading_and_keeps_every_steps_points(checkout):
    """A slug without a step number grades every step; when the autograder's own time limit runs out (here before
    the checker's), what was not run scores 0 of its points, and nothing the checker started is left running."""
    solve(checkout, "01", before_forward=HANG)
    run, result, body = autograde(checkout, "layernorm", LAYERNORM_TIME_LIMIT="5", LAYERNORM_TIMEOUT_SCALE="30")
    assert [t["test-name"] for t in result["tests"]] == [
        name for step in available_steps() for name in check_names(step)
    ]
    assert result["max-score"] == sum(STEP_POINTS.values())
    assert result["score"] < result["max-score"]
    not_run = [test for test in result["tests"] if test["status"] == "not run"]
    assert {test["step"] for test in not_run} == set(available_steps())  # step 01 was stopped, the rest never began
    assert all("time limit (5 s) ran out" in test["reason"] and test["score"] == 0 for test in not_run)
    assert "Step 06: LayerNorm kernel in Mojo, as a MAX custom op: 0/" in body
    learner = str(checkout / "steps")
    left = [p for p in psutil.process_iter(["cmdline"]) if learner in " ".join(p.info["cmdline"] or [])]
    for process in left:  # a failing test leaves nothing running either
        process.kill()
    assert not [process.info for process in left]


@pytest.mark.parametrize("case", ["not this project", "no runner variables"])
def test_grading_that_cannot_run_is_an_infrastructure_error(tmp_path, case):
    """Exit non-zero, no result.json: Classroom 50 then reports an error, not a score of 0."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LAYERNORM_")}
    if case == "not this project":
        env.update(RUNNER, ASSIGNMENT="layernorm-step-01")
    else:
        env = {key: value for key, value in env.items() if key not in RUNNER and key != "ASSIGNMENT"}
    run = subprocess.run(
        [sys.executable, str(AUTOGRADER)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0 and not (tmp_path / "result.json").exists()
    expected = "is not a checkout of LayerNorm from scratch" if case == "not this project" else "CLASSROOM"
    assert "::error::autograder:" in run.stderr and expected in run.stderr


def test_the_autograder_needs_only_the_standard_library():
    """The runner's Python has nothing installed: the autograder imports only what ships with Python."""
    tree = ast.parse(AUTOGRADER.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(
        sys.stdlib_module_names
    )


# -- the checker command -------------------------------------------------------------------------------
def test_points_are_split_in_whole_shares_that_add_up():
    assert split_points(100, 14) == [8, 8] + [7] * 12
    assert split_points(150, 3) == [50, 50, 50]
    assert split_points(5, 0) == []
    for points, count in [(200, 12), (250, 9), (7, 7)]:
        shares = split_points(points, count)
        assert sum(shares) == points and max(shares) - min(shares) <= 1


def test_every_step_has_points_and_every_check_earns_some():
    assert set(STEP_POINTS) == set(available_steps())
    for step, points in STEP_POINTS.items():
        assert isinstance(points, int) and points >= 1 + len(load_checklist(step).checks), step


def test_a_check_this_machine_cannot_run_is_left_out_of_the_points():
    names = ["imports", "forward", "GPU: forward"]
    grades = StepGrades("06", "title", "steps/step_06/step_06.py", 250, [result_test("06", name) for name in names])
    grades.tests[0].update(result_test("06", "imports", "passed"))
    grades.tests[1].update(result_test("06", "forward", "failed", "wrong"))
    grades.tests[2].update(result_test("06", "GPU: forward", "skipped", "no GPU here"))
    summary = grades.as_json()
    assert (summary["score"], summary["max-score"]) == (125, 250)
    assert [(t["score"], t["max-score"], t["passed"]) for t in grades.tests] == [
        (125, 125, True),
        (0, 125, False),
        (0, 0, True),
    ]
    assert (grades.tests[1]["hint"], grades.tests[2]["reason"]) == ("wrong", "no GPU here")


def test_the_checker_command_grades_each_step_and_scores_a_skeleton_zero(checkout):
    """`python -m tests.check classroom50 01 02 --out PATH`: step 01 with one mistake, step 02 untouched."""
    solve(checkout, "01", replace=UNBIASED)
    out = checkout.parent / "grades.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.check", "classroom50", "01", "02", "--out", str(out)],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # not every check passes
    grades = json.loads(out.read_text())
    assert [test["test-name"] for test in grades["tests"]] == check_names("01") + check_names("02")
    one, two = grades["steps"]
    assert (one["state"], one["max-score"], two["state"], two["max-score"]) == ("graded", 100, "not started", 200)
    assert 0 < one["score"] < 100 and two["score"] == 0 and grades["finished"]
    assert grades["score"] == sum(t["score"] for t in grades["tests"]) == one["score"]
    biased = by_name(grades)["Step 01: variance is the biased one (divides by D)"]
    assert biased["status"] == "failed" and "unbiased" in biased["hint"]
    skeleton = [test for test in grades["tests"] if test["step"] == "02"]
    assert all(t["status"] == "failed" and t["hint"].startswith("Not started: steps/step_02.py") for t in skeleton)
    assert (
        "Running checks for Step 01" in run.stdout and "Step 02: LayerNorm backward in NumPy: not started" in run.stdout
    )


def test_the_checker_command_refuses_a_folder_for_its_grades(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "tests.check", "classroom50", "01", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "is a folder" in run.stderr
