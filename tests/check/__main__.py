"""Command line of the step checker (see `tests/check/__init__.py`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from tests.check.engine import REPO_ROOT, Result, available_steps, display_path, load_checklist, run_checklist

USAGE_ERROR = 2


def _step_id(text: str) -> str:
    digits = text.lower().removeprefix("s").removeprefix("tep").removeprefix("_")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"expected a step number such as 01, got {text!r}")
    step = f"{int(digits):02d}"
    if step not in available_steps():
        raise argparse.ArgumentTypeError(f"no step {step}; the steps are {', '.join(available_steps())}")
    return step


def _parser(add_step_arguments=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check",
        description="Run a step's checks against your code (default: steps/step_NN.py).",
    )
    parser.add_argument("step", type=_step_id, help="step number, e.g. 01")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--solution", action="store_true", help="check the reference solution")
    target.add_argument("--file", nargs="+", type=Path, metavar="PATH",
                        help="check these files instead (e.g. a folder of submissions: --file subs/*.py)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per file on stdout instead of the ✅/❌ report")
    if add_step_arguments:
        add_step_arguments(parser)
    return parser


def _print_result(result: Result) -> None:
    if result.passed:
        print(f"✅ {result.name}" + (f"  ({result.message})" if result.message else ""), flush=True)
    else:
        print(f"❌ {result.name}\n   ↳ {result.message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Parse once for the step alone, then again with that step's own options (e.g. --device).
    known, _ = _parser().parse_known_args(argv)
    checklist = load_checklist(known.step)
    options = _parser(checklist.add_arguments).parse_args(argv)

    paths = options.file or [REPO_ROOT / (checklist.solution if options.solution else checklist.skeleton)]
    for path in paths:
        if not path.exists():
            print(f"error: {path} does not exist (expected a file with the interface of step {options.step})",
                  file=sys.stderr)
            return USAGE_ERROR

    all_passed = True
    for path in paths:
        if options.json:
            report = run_checklist(checklist, path, options)
            print(json.dumps(report.as_json(), ensure_ascii=False), flush=True)
        else:
            print(f"Running checks for Step {checklist.step}: {checklist.title}")
            print(f"Checking {display_path(path)}\n", flush=True)
            report = run_checklist(checklist, path, options, on_result=_print_result,
                                   on_note=lambda line: print(line, flush=True))
            passed = sum(result.passed for result in report.results)
            failed = len(report.results) - passed
            print()
            if failed:
                print(f"Stuck? Read docs/src/step_{checklist.step}.md, or compare with the solution: "
                      f"make compare NN={checklist.step}")
            print(f"{passed} passed, {failed} failed", flush=True)
        all_passed &= report.passed
    return 0 if all_passed else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(main())
