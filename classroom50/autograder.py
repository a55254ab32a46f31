#!/usr/bin/env python3
"""Classroom 50 autograder for "LayerNorm from scratch": partial credit per check, each failed check with its hint.

Install it as the classroom's default autograder (every assignment of the classroom uses it):

    gh teacher autograder set-default ORG CLASSROOM --from classroom50/autograder.py

or commit it as CLASSROOM/autograders/ASSIGNMENT/autograder.py in the organization's classroom50 repository (one
assignment). Classroom 50's runner runs it in the student's checkout of this repository, with CLASSROOM,
ASSIGNMENT, SUBMISSION_TAG, COMMIT_URL, RELEASE_URL, REVIEW_URL, USERNAME/OWNER and GITHUB_* set. It

1. sets up the environment the README's way: `make venv` (a `.venv` already there is reused), with the Python
   running this file (the project needs 3.10-3.13: give the assignment a runtime such as {"python": "3.12"});
2. grades the assignment's step, or every step: a slug ending in a step number (`layernorm-step-03`) grades that
   step, any other slug every step. `python -m tests.check classroom50` does the grading (tests/check/
   classroom50.py: one test per check, each step's points, STEP_POINTS, split over its checks);
3. writes ./result.json (schema classroom50/result/v1) and ./release-body.md (a ✅/❌ table per step), and
   exits 0, whatever the score. A submission that hangs, crashes or floods its output costs the checks it fails;
   if the whole run passes TIME_LIMIT, the checks not yet run score 0 and the result is written all the same.

It exits non-zero only when grading could not run (Classroom 50 then reports an error, not a score): the
runner's variables missing, not a checkout of this project, `make venv` failing, or the checker writing nothing.
Only the standard library is used here: the runner's Python has nothing else.

Settings (edit them here before installing the file; the environment variables override them, for a local try):
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What students see: "hints" (each failed check's hint, as `make sNN` prints it) or "names" (the check names and
# points only; the hints stay out of result.json, release-body.md and the job's log).
FEEDBACK = os.environ.get("LAYERNORM_FEEDBACK", "hints")
# Seconds for the whole run, `make venv` included. Classroom 50 stops the grade job after 15 minutes, its own set-up
# and publishing included: keep this well below.
TIME_LIMIT = os.environ.get("LAYERNORM_TIME_LIMIT", "600")

RUNNER_VARIABLES = ("CLASSROOM", "ASSIGNMENT", "SUBMISSION_TAG", "COMMIT_URL", "RELEASE_URL")
GRACE_SECONDS = 15  # after the time limit, for the checker to stop the learner's processes and write its grades
LOG_TAIL = 20_000  # characters of the checker's report echoed to the job's log
MARKS = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "not run": "⏹️"}


class CannotGrade(Exception):
    """Grading could not run: an infrastructure error, not a grade."""


def main() -> int:
    started = time.monotonic()
    try:
        feedback, limit = settings()
        missing = [name for name in RUNNER_VARIABLES if not os.environ.get(name)]
        if missing:
            raise CannotGrade(
                f"{', '.join(missing)} not set: Classroom 50's runner sets them (to try this by hand, set "
                f"{', '.join(RUNNER_VARIABLES)} yourself)"
            )
        checkout = Path.cwd()
        if not (checkout / "tests" / "check" / "classroom50.py").is_file() or not (checkout / "Makefile").is_file():
            raise CannotGrade(f"{checkout} is not a checkout of LayerNorm from scratch (no tests/check/classroom50.py)")
        deadline = started + limit
        steps = steps_to_grade(os.environ["ASSIGNMENT"], checkout)
        python = set_up(checkout, deadline)
        with tempfile.TemporaryDirectory(prefix="layernorm-grades-") as scratch:
            grades, log, stopped = run_checker(python, checkout, steps, Path(scratch), deadline)
        if grades is None:
            raise CannotGrade(f"the checker wrote no grades (exit code {stopped}); its output:\n{indent(log[-4000:])}")
    except CannotGrade as error:
        print(f"::error::autograder: {error}", file=sys.stderr)
        return 1
    tests = finish_tests(grades, stopped, limit)
    if feedback == "names":
        tests = [{key: value for key, value in test.items() if key not in ("hint", "note")} for test in tests]
    result = result_json(tests)
    Path("result.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    Path("release-body.md").write_text(release_body(result, grades["steps"], feedback), encoding="utf-8")
    print(indent(log[-LOG_TAIL:]) if feedback == "hints" else names_only(tests))
    print(f"autograder: {result['score']}/{result['max-score']} ({time.monotonic() - started:.0f} s)")
    return 0


def settings() -> tuple[str, float]:
    if FEEDBACK not in ("hints", "names"):
        raise CannotGrade(f'FEEDBACK (LAYERNORM_FEEDBACK) is {FEEDBACK!r}: expected "hints" or "names"')
    try:
        limit = float(TIME_LIMIT)
    except ValueError:
        limit = 0.0
    if not limit > 0:
        raise CannotGrade(f"TIME_LIMIT (LAYERNORM_TIME_LIMIT) is {TIME_LIMIT!r}: expected seconds, such as 600")
    return FEEDBACK, limit


def steps_to_grade(assignment: str, checkout: Path) -> list[str]:
    """[the step] for a slug ending in a step's number (`layernorm-step-03`, `step3`), [] (every step) otherwise."""
    number = re.search(r"(\d+)$", assignment)
    step = f"{int(number.group(1)):02d}" if number else None
    if step and (checkout / "tests" / "check" / f"step_{step}" / "checklist.py").is_file():
        print(f"autograder: grading step {step} (the assignment {assignment!r} ends in its number)")
        return [step]
    print(f"autograder: grading every step (the assignment {assignment!r} does not end in a step's number)")
    return []


def set_up(checkout: Path, deadline: float) -> Path:
    """`make venv` with this Python (reuses a .venv that is up to date); returns the environment's Python."""
    command = ["make", "venv", f"PYTHON={sys.executable}"]
    print(f"autograder: {' '.join(command)}", flush=True)
    started = time.monotonic()
    try:
        made = subprocess.run(
            command,
            cwd=checkout,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=max(deadline - time.monotonic(), 1),
        )
    except FileNotFoundError as error:
        raise CannotGrade(f"make is not installed ({error})") from None
    except subprocess.TimeoutExpired:
        raise CannotGrade("`make venv` did not finish within the time limit (TIME_LIMIT)") from None
    python = checkout / ".venv" / "bin" / "python"
    if made.returncode != 0 or not python.exists():
        raise CannotGrade(
            f"`make venv` failed (exit code {made.returncode}) with Python {sys.version.split()[0]}; the project "
            f'needs Python 3.10-3.13 (set the assignment\'s runtime, e.g. {{"python": "3.12"}}). Its output:\n'
            + indent((made.stdout + made.stderr)[-4000:])
        )
    print(f"autograder: .venv ready ({time.monotonic() - started:.0f} s)", flush=True)
    return python


def run_checker(python: Path, checkout: Path, steps: list[str], scratch: Path, deadline: float):
    """(grades or None, the checker's output, "time limit" or its exit code). At the deadline the checker gets
    SIGTERM (it stops the learner's processes and marks what it did not run), then, after GRACE_SECONDS, SIGKILL."""
    out, log_path = scratch / "grades.json", scratch / "checker.log"
    command = [str(python), "-m", "tests.check", "classroom50", *steps, "--out", str(out)]
    with log_path.open("wb") as log:
        checker = subprocess.Popen(
            command,
            cwd=checkout,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the time limit stops everything it started
        )
        try:
            stopped = checker.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            stopped = "time limit"
            signal_group(checker.pid, signal.SIGTERM)
            try:
                checker.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                signal_group(checker.pid, signal.SIGKILL)
                checker.wait()
    text = log_path.read_text(encoding="utf-8", errors="replace")
    try:
        grades = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, text, stopped
    return grades, text, stopped


def signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the checker leads a session of its own: this reaches what it started, too
    except ProcessLookupError:
        pass  # it ended on its own meanwhile


def finish_tests(grades: dict, stopped, limit: float) -> list[dict]:
    """The checker's tests, each pending one (the run stopped before it) failed, saying why."""
    if stopped == "time limit":
        why = f"Not run: the autograder's time limit ({limit:.0f} s) ran out first."
    else:
        why = f"Not run: the checker stopped (exit code {stopped}) before this check; see the job's log."
    tests = []
    for test in grades["tests"]:
        if test["status"] == "pending":
            test = {**test, "status": "not run", "passed": False, "score": 0, "reason": why}
        tests.append(test)
    return tests


def result_json(tests: list[dict]) -> dict:
    env = os.environ
    return {
        "schema": "classroom50/result/v1",
        "classroom": env["CLASSROOM"],
        "assignment": env["ASSIGNMENT"],
        "submission": env["SUBMISSION_TAG"],
        "commit": env["COMMIT_URL"],
        "release": env["RELEASE_URL"],
        "review": env.get("REVIEW_URL") or env["COMMIT_URL"],
        # The runner stamps the submission instant over this; it is here for a result read without the runner.
        "datetime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "score": sum(test["score"] for test in tests),
        "max-score": sum(test["max-score"] for test in tests),
        "tests": tests,
    }


# -- what students read --------------------------------------------------------------------------------
def cell(text) -> str:
    """Text that stays inside one cell of a Markdown table (and renders no HTML)."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text.replace("|", "\\|").replace("<", "&lt;")


def release_body(result: dict, steps: list[dict], feedback: str) -> str:
    parts = [f"### LayerNorm from scratch: {result['score']}/{result['max-score']}"]
    for step in steps:
        tests = [test for test in result["tests"] if test["step"] == step["step"]]
        score, most = sum(t["score"] for t in tests), sum(t["max-score"] for t in tests)
        parts.append(f"#### Step {step['step']}: {step['title']}: {score}/{most}")
        if step["state"] == "not started":
            parts.append(f"Not started: `{step['file']}` is still the skeleton as shipped.")
            continue
        if all(test["status"] == "not run" for test in tests):
            parts.append(cell(tests[0]["reason"]))
            continue
        header = ["", "check", "points", "hint" if feedback == "hints" else "note"]
        rows = []
        for test in tests:
            name = test["test-name"].removeprefix(f"Step {step['step']}: ")
            if test["status"] == "skipped":
                points, why = "not counted", f"skipped: {test.get('reason', '')}"
            else:  # in "names", the hints are gone already: a check not run still says why
                points, why = f"{test['score']}/{test['max-score']}", test.get("hint") or test.get("reason") or ""
            rows.append([MARKS.get(test["status"], ""), name, points, why])
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
        parts.append(f"`{step['file']}`\n\n" + "\n".join(lines))
        parts += [f"- {cell(note)}" for note in step.get("notes", [])]
    example = steps[0]["step"] if steps else "01"
    if feedback == "names":
        parts.append(f"The hints are not shown here: `make s{example}` in your checkout runs these checks with them.")
    else:
        parts.append(f"The same checks run in your checkout: `make s{example}`; `make hint NN={example}` for a hint.")
    return "\n\n".join(parts) + "\n"


def names_only(tests: list[dict]) -> str:
    return "\n".join(f"{MARKS.get(t['status'], '')} {t['test-name']} ({t['score']}/{t['max-score']})" for t in tests)


def indent(text: str) -> str:
    """Indented, so that nothing echoed from the checker is read as a workflow command (`::error::` at column 0)."""
    return "\n".join("  " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
