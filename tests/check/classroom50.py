"""Grades for Classroom 50: every check of a step is a test, and the step's points are split over its checks.

python -m tests.check classroom50 [NN ...] --out PATH [--timeout-scale X]

Runs the checks of each step given (default: every step) on the learner's own files, as `python -m tests.check NN`
does, prints the same reports, and writes PATH: the `tests`, `score` and `max-score` of a Classroom 50 result.json
(schema classroom50/result/v1). `classroom50/autograder.py` adds the submission's identity and the release body.

Points. Each step's record (tests/check/steps.py) says what the step is worth. A step's points are split in equal
whole shares over its judged checks, the first checks taking one point more when they do not divide evenly
(Classroom 50 scores are integers). A check this machine cannot run (step 06's GPU checks where MAX sees no GPU;
also a check left out by --quick or --only) is reported `skipped` with 0 of 0 points and `passed: true`: it can
never be earned on such a runner, so it is left out of max-score instead of costing points, and it does not turn the
submission's status red. A step's max-score is therefore its points, with or without a GPU.

A step whose files are still the skeleton as shipped is not run: each of its checks fails, saying so (an untouched
skeleton passes a few checks, such as "uses NumPy only", that would otherwise earn points for nothing).

PATH is rewritten after every check. The checks of a step not yet run are listed as `pending`; a run stopped
(SIGTERM, Ctrl-C: the autograder's time limit) leaves them so, and every step's points stay accounted for.
Each test carries, besides the contract's four fields: `step`, `status` (passed, failed, skipped, pending),
`seconds`, and `hint` (a failed check's hint), `reason` (why a check was skipped) or `note` (a passed check's).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.check import progress
from tests.check.cli import INTERRUPTED, USAGE_ERROR, add_run_options, parse_check_arguments, step_id
from tests.check.engine import (
    REPO_ROOT,
    Result,
    available_steps,
    display_path,
    load_checklist,
    run_checklist,
    skip_reason,
)
from tests.check.printer import ReportPrinter
from tests.check.steps import STEPS

# What each step is worth: its record's `points` (tests/check/steps.py; 1000 in all). Reweigh there.
STEP_POINTS = {record.number: record.points for record in STEPS}

DETAIL = {"failed": "hint", "skipped": "reason", "passed": "note"}  # the field a check's message goes in


def split_points(points: int, count: int) -> list[int]:
    """`points` in `count` whole shares as equal as they can be, the larger ones first."""
    if count == 0:
        return []
    share, extra = divmod(points, count)
    return [share + (index < extra) for index in range(count)]


@dataclass
class StepGrades:
    step: str
    title: str
    file: str
    points: int
    tests: list[dict]
    state: str = "pending"  # then running, then graded (or stopped); or "not started"
    notes: list[str] = field(default_factory=list)

    def scored(self) -> list[dict]:
        """The tests with their points: the step's points split over the checks not skipped."""
        judged = [test for test in self.tests if test["status"] != "skipped"]
        for test, share in zip(judged, split_points(self.points, len(judged)), strict=True):
            test["max-score"] = share
            test["score"] = share if test["status"] == "passed" else 0
        for test in self.tests:
            if test["status"] == "skipped":
                test["max-score"] = test["score"] = 0
        return self.tests

    def as_json(self) -> dict:
        tests = self.scored()
        return {
            "step": self.step,
            "title": self.title,
            "file": self.file,
            "points": self.points,
            "state": self.state,
            "score": sum(test["score"] for test in tests),
            "max-score": sum(test["max-score"] for test in tests),
            "notes": self.notes,
        }


def result_test(step: str, name: str, status: str = "pending", message: str = "", seconds: float = 0.0) -> dict:
    entry = {
        "test-name": f"Step {step}: {name}",
        "passed": status in ("passed", "skipped"),
        "score": 0,
        "max-score": 0,
        "step": step,
        "status": status,
        "seconds": round(seconds, 3),
    }
    if message and status in DETAIL:
        entry[DETAIL[status]] = message
    return entry


class Grades:
    """The grades of a run, written to `out` (atomically) whenever they change."""

    def __init__(self, out: Path, steps: list[str]):
        self.out = out
        self.steps: dict[str, StepGrades] = {}
        for step in steps:
            checklist = load_checklist(step)
            names = [f"{Path(checklist.skeleton).name} imports", *(check.name for check in checklist.checks)]
            self.steps[step] = StepGrades(
                step,
                checklist.title,
                display_path(REPO_ROOT / checklist.skeleton),
                STEP_POINTS[step],
                [result_test(step, name) for name in names],
            )
        self.cursor = 0  # the running step's next result
        self.write()

    def start(self, step: str, checklist, options) -> None:
        """The step begins: its checks this machine cannot run are skipped from the start (their points are
        known before any check runs)."""
        grades = self.steps[step]
        grades.state, self.cursor = "running", 0
        for test, check in zip(grades.tests[1:], checklist.checks, strict=True):
            reason = skip_reason(check, options)
            if reason:
                test.update(result_test(step, check.name, "skipped", reason))
        self.write()

    def record(self, step: str, result: Result) -> None:
        tests = self.steps[step].tests
        entry = result_test(step, result.name, result.status, result.message, result.seconds)
        if self.cursor < len(tests):
            tests[self.cursor] = entry
        else:  # not in the plan (the checklist changed under us): still graded
            tests.append(entry)
        self.cursor += 1
        self.write()

    def not_started(self, step: str) -> None:
        """The step's files are the skeleton as shipped: every check fails, without running (no free points
        for the checks an untouched skeleton passes, and no compile for a step nobody began)."""
        grades = self.steps[step]
        hint = f"Not started: {grades.file} is still the skeleton as shipped."
        for test in grades.tests:
            test.update(status="failed", passed=False, hint=hint)
        grades.state = "not started"
        self.write()

    def note(self, step: str, line: str) -> None:
        self.steps[step].notes.append(line)

    def finish(self, step: str, state: str = "graded") -> None:
        self.steps[step].state = state
        self.write()

    def as_json(self) -> dict:
        steps = [grades.as_json() for grades in self.steps.values()]
        tests = [test for grades in self.steps.values() for test in grades.tests]
        return {
            "score": sum(step["score"] for step in steps),
            "max-score": sum(step["max-score"] for step in steps),
            "finished": all(step["state"] in ("graded", "not started") for step in steps),
            "steps": steps,
            "tests": tests,
        }

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.out.with_name(self.out.name + ".tmp")
        temporary.write_text(json.dumps(self.as_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        temporary.replace(self.out)  # a reader (or a kill) never sees half a file


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check classroom50",
        description="Check your steps and write their grades for Classroom 50 (classroom50/autograder.py runs "
        "this): one test per check, each step's points split over its checks.",
    )
    parser.add_argument("steps", nargs="*", type=step_id, metavar="NN", help="the steps to grade (default: every step)")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="where the grades (JSON) go")
    add_run_options(parser)
    return parser


def _stop(signum, frame):
    raise KeyboardInterrupt  # unwinds through the sandbox, which ends the learner's processes


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)  # the autograder's time limit
    options = parser().parse_args(argv)
    steps = list(dict.fromkeys(options.steps)) or available_steps()
    unweighted = [step for step in steps if step not in STEP_POINTS]
    if unweighted:
        print(f"error: step {', '.join(unweighted)} has no points in STEP_POINTS ({__file__})", file=sys.stderr)
        return USAGE_ERROR
    if options.out.is_dir():
        print(f"error: --out {options.out} is a folder; name the file the grades go to", file=sys.stderr)
        return USAGE_ERROR
    grades = Grades(options.out, steps)
    step, passed = None, True
    try:
        for step in steps:
            checklist, step_options = parse_check_arguments([step])
            for name in ("quick", "only", "timeout_scale"):
                setattr(step_options, name, getattr(options, name))
            path = REPO_ROOT / checklist.skeleton
            if progress.not_started(step):
                print(f"Step {step}: {checklist.title}: not started ({display_path(path)} is the skeleton)\n")
                grades.not_started(step)
                passed = False
                continue
            print(f"Running checks for Step {step}: {checklist.title}\nChecking {display_path(path)}\n", flush=True)
            printer = ReportPrinter()
            grades.start(step, checklist, step_options)

            def on_result(result: Result, step=step, printer=printer) -> None:
                grades.record(step, result)
                printer.result(result)

            def on_note(line: str, step=step, printer=printer) -> None:
                grades.note(step, line)
                printer.note(line)

            report = run_checklist(checklist, path, step_options, on_result=on_result, on_note=on_note)
            printer.finish(report, step)
            print(flush=True)
            grades.finish(step)
            passed &= report.passed
    except KeyboardInterrupt:
        if step is not None and grades.steps[step].state == "running":
            grades.finish(step, "stopped")
        print(f"\nStopped: the checks not run are marked pending in {options.out}", file=sys.stderr)
        return INTERRUPTED
    total = grades.as_json()
    print(f"Grades: {total['score']}/{total['max-score']} points, written to {options.out}")
    return 0 if passed else 1
