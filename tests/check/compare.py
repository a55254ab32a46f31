"""Your step next to the solution: `python -m tests.check.compare NN [--file PATH]`.

Each TODO block of your file is shown beside the solution's block of the same name; whatever you
changed outside the blocks follows as a unified diff. A file whose block markers are gone is
compared whole. Step 06 is a folder: every file in it is compared.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import shutil
import signal
import sys
import textwrap
from pathlib import Path

from tests.check.__main__ import step_id
from tests.check.blocks import SOLUTION, blocks, file_pairs, outside
from tests.check.engine import REPO_ROOT, display_path, load_checklist

COLOURS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}


def side_by_side(left: list[str], right: list[str], width: int) -> list[str]:
    """Two columns, `yours | solution`, long lines wrapped inside their column."""
    column = max((width - 3) // 2, 20)

    def wrapped(lines):
        return [piece for line in lines for piece in (textwrap.wrap(line, column, drop_whitespace=False) or [""])]

    rows = itertools.zip_longest(wrapped(left), wrapped(right), fillvalue="")
    return [f"{a:<{column}} | {b}".rstrip() for a, b in rows]


def unified(mine: list[str], theirs: list[str], name_mine: str, name_theirs: str, colour: bool) -> list[str]:
    lines = difflib.unified_diff(mine, theirs, fromfile=name_mine, tofile=name_theirs, lineterm="")
    return [f"{COLOURS[line[:1]]}{line}\033[0m" if colour and line[:1] in COLOURS else line for line in lines]


def compare_file(mine: Path, reference: Path, colour: bool, width: int) -> list[str]:
    ours = mine.read_text().splitlines() if mine.exists() else []
    theirs = reference.read_text()
    name_mine, name_theirs = f"yours: {display_path(mine)}", f"solution: {display_path(reference)}"
    todo, anchors = blocks("\n".join(ours)), blocks(theirs, SOLUTION)
    names = [name for name in todo if name in anchors]
    if not names:  # no TODO blocks (markers deleted, or a file without tasks): the whole file
        return unified(ours, theirs.splitlines(), name_mine, name_theirs, colour)
    out = []
    for name in names:
        out += [f"── block `{name}` ── {name_mine} | {name_theirs}"]
        out += side_by_side(todo[name], anchors[name], width) + [""]
    rest_mine, rest_theirs = outside("\n".join(ours), names), outside(theirs, names, SOLUTION)
    if rest_mine != rest_theirs:
        out += ["── outside the blocks ──"] + unified(rest_mine, rest_theirs, name_mine, name_theirs, colour)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check.compare", description="Show your TODO blocks beside the solution's."
    )
    parser.add_argument("step", type=step_id, help="step number, e.g. 03")
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
    width = shutil.get_terminal_size((160, 40)).columns
    for mine_file, reference in file_pairs(mine, solution):
        print("\n".join(compare_file(mine_file, reference, colour, width)))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(main())
