"""Your step next to the solution: `python -m tests.check.compare NN [--file PATH]`.

A unified diff, coloured on a terminal. Step 06 is a folder: every file in it is compared.
"""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
from pathlib import Path

from tests.check.__main__ import _step_id
from tests.check.engine import REPO_ROOT, display_path, load_checklist

COLOURS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}


def _pairs(mine: Path, solution: Path):
    """(mine, solution) file pairs; a step that is a folder pairs its files by name."""
    if solution.is_dir():
        for reference in sorted(p for p in solution.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            relative = reference.relative_to(solution)
            yield mine / relative.with_name(relative.name.replace("solution_", "step_")), reference
    else:
        yield mine, solution


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.check.compare",
                                     description="Show how your step differs from the solution.")
    parser.add_argument("step", type=_step_id, help="step number, e.g. 03")
    parser.add_argument("--file", type=Path, help="your file (default: steps/step_NN.py)")
    parser.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    options = parser.parse_args(argv)
    checklist = load_checklist(options.step)
    solution = REPO_ROOT / checklist.solution
    mine = options.file or REPO_ROOT / checklist.skeleton
    if solution.parent.name.startswith("solution_"):  # a step that is a folder (Mojo package + glue)
        solution, mine = solution.parent, (mine if mine.is_dir() else mine.parent)
    if not mine.exists():
        print(f"error: {mine} does not exist", file=sys.stderr)
        return 2
    colour = sys.stdout.isatty() and not options.no_color
    for mine_file, reference in _pairs(mine, solution):
        ours = mine_file.read_text().splitlines() if mine_file.exists() else []
        theirs = reference.read_text().splitlines()
        for line in difflib.unified_diff(ours, theirs, fromfile=f"yours: {display_path(mine_file)}",
                                         tofile=f"solution: {display_path(reference)}", lineterm=""):
            print(f"{COLOURS.get(line[:1], '')}{line}\033[0m" if colour and line[:1] in COLOURS else line)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(main())
