"""Command line of the step checker (see `tests/check/__init__.py`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path

from tests.check.engine import REPO_ROOT, available_steps, display_path, load_checklist, run_checklist
from tests.check.formats import write_junit
from tests.check.printer import ReportPrinter
from tests.check.sandbox import stop_all

USAGE_ERROR = 2
INTERRUPTED = 130  # what a shell reports for Ctrl-C
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_stopping: list[int] = []  # the signal already on its way out


def step_id(text: str) -> str:
    """01, s01, step_01, or a step's file (steps/step_06/layer_norm.mojo: what an editor's task passes)."""
    in_path = re.findall(r"(?:step|solution)_(\d+)", text) if re.search(r"[/\\.]", text) else []
    digits = in_path[-1] if in_path else text.lower().removeprefix("s").removeprefix("tep").removeprefix("_")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected a step number such as 01 (or a step's file, e.g. steps/step_01.py), got {text!r}"
        )
    step = f"{int(digits):02d}"
    if step not in available_steps():
        raise argparse.ArgumentTypeError(f"no step {step}; the steps are {', '.join(available_steps())}")
    return step


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number such as 2.5, got {text!r}")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose which checks run and how long they may take (`check` and `grade` share them)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the slow checks (whole-graph compiles, timings); run without it before moving on",
    )
    parser.add_argument("--only", metavar="TEXT", help="run only the checks whose name contains TEXT")
    parser.add_argument(
        "--timeout-scale",
        type=positive_float,
        metavar="X",
        help="multiply every time limit by X (a slow or busy machine; default 1, or $LAYERNORM_TIMEOUT_SCALE)",
    )


def check_parser(add_step_arguments=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check",
        description="Run a step's checks against your code (default: steps/step_NN.py).",
        epilog="Other commands: watch [NN] (re-check on save), status (your progress; also with no argument), "
        "hint NN (the next hint), reset NN|--all (the skeleton back; your file saved first), restore NN (your last "
        "backup back).",
    )
    parser.add_argument("step", type=step_id, help="step number, e.g. 01")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--solution", action="store_true", help="check the reference solution")
    target.add_argument(
        "--file",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="check these files instead (e.g. a folder of submissions: --file subs/*.py)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead of the report")
    parser.add_argument(
        "--junit", type=Path, metavar="PATH", help="also write the results as JUnit XML (one testsuite per file)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every failed check, also repeats of one cause")
    add_run_options(parser)
    parser.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # a checklist bug raises (our tests)
    if add_step_arguments:
        add_step_arguments(parser)
    return parser


def parse_check_arguments(argv: list[str]):
    """(checklist, options): parsed once for the step alone, then with that step's own options (e.g. --device)."""
    known, _ = check_parser().parse_known_args(argv)
    checklist = load_checklist(known.step)
    return checklist, check_parser(checklist.add_arguments).parse_args(argv)


def learner_path(checklist, path: Path) -> Path:
    """A folder stands for its file named like the step's skeleton (step 06's folder: its step_06.py)."""
    inside = path / Path(checklist.skeleton).name
    return inside if path.is_dir() and inside.is_file() else path


def check(argv: list[str]) -> int:
    checklist, options = parse_check_arguments(argv)
    paths = options.file or [REPO_ROOT / (checklist.solution if options.solution else checklist.skeleton)]
    paths = [learner_path(checklist, path) for path in paths]
    for path in paths:
        if path.is_dir():
            print(
                f"error: {path} is a folder without {Path(checklist.skeleton).name}: give the file with the "
                f"interface of step {options.step}",
                file=sys.stderr,
            )
            return USAGE_ERROR
        if not path.exists():
            print(
                f"error: {path} does not exist (expected a file with the interface of step {options.step})",
                file=sys.stderr,
            )
            return USAGE_ERROR
    reports = []
    for path in paths:
        if options.json:
            report = run_checklist(checklist, path, options, strict=options.strict)
            print(json.dumps(report.as_json(), ensure_ascii=False), flush=True)
        else:
            print(f"Running checks for Step {checklist.step}: {checklist.title}")
            print(f"Checking {display_path(path)}\n", flush=True)
            printer = ReportPrinter(verbose=options.verbose)
            report = run_checklist(
                checklist, path, options, strict=options.strict, on_result=printer.result, on_note=printer.note
            )
            printer.finish(report, checklist.step)
        reports.append(report)
    if not (options.file or options.solution or options.quick or options.only):
        from tests.check import progress

        progress.store_report(checklist.step, report)  # your own step, every check: what `status` shows
    if options.junit:
        write_junit(options.junit, [report.as_json() for report in reports])
    return 0 if all(report.passed for report in reports) else 1


def main(argv: list[str] | None = None) -> int:
    from tests.check import classroom50, commands, grade, watch

    argv = sys.argv[1:] if argv is None else argv
    learner_commands = {
        "status": commands.status,
        "hint": commands.hint,
        "reset": commands.reset,
        "restore": commands.restore,
        "watch": watch.main,
        "grade": grade.main,  # for instructors: a class's submissions
        "classroom50": classroom50.main,  # for instructors: what classroom50/autograder.py grades with
    }
    if not argv:
        return commands.status([])
    if argv[0] in learner_commands:
        return learner_commands[argv[0]](argv[1:])
    return check(argv)


def _on_signal(signum, _frame) -> None:
    """Ctrl-C, SIGTERM, SIGHUP (the terminal closed): the learner's processes end now, then this one, through every
    `finally` on the way (grade keeps what it graded, private folders are removed). A second signal does not wait."""
    stop_all()
    if _stopping:
        os._exit(128 + signum)
    _stopping.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def run() -> int:
    """`main`, ended by a signal or an error as cleanly as by its return: no learner process outlives it."""
    for signum in STOPPING:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup's SIGHUP, a background job's SIGINT: kept
            signal.signal(signum, _on_signal)
    try:
        return main()
    except KeyboardInterrupt:
        print("Interrupted: the checks stopped.", file=sys.stderr)
        return INTERRUPTED
    finally:
        stop_all()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(run())
