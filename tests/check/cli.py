"""The checker's command line, shared by every command: step ids, the run options, usage errors.

`python -m tests.check NN` (`__main__`) and its other commands (status, hint, reset, restore, watch,
grade, classroom50) parse their arguments with these, so a step is named, and a run is limited, the
same way everywhere.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from tests.check.engine import available_steps, load_checklist

USAGE_ERROR = 2
INTERRUPTED = 130  # what a shell reports for Ctrl-C


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
