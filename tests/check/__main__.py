"""Command line of the step checker (see `tests/check/__init__.py`)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from tests.check import classroom50, commands, grade, progress, watch
from tests.check.cli import INTERRUPTED, USAGE_ERROR, learner_path, parse_check_arguments
from tests.check.engine import REPO_ROOT, display_path, run_checklist
from tests.check.formats import write_junit
from tests.check.printer import ReportPrinter
from tests.check.sandbox import stop_all

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_stopping: list[int] = []  # the signal already on its way out


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
        progress.store_report(checklist.step, report)  # your own step, every check: what `status` shows
    if options.junit:
        write_junit(options.junit, [report.as_json() for report in reports])
    return 0 if all(report.passed for report in reports) else 1


def main(argv: list[str] | None = None) -> int:
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
