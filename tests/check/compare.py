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

from tests.check import steps
from tests.check.blocks import SOLUTION, blocks, file_pairs, outside
from tests.check.cli import step_id
from tests.check.engine import REPO_ROOT, display_path, load_checklist

COLOURS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}


GUTTER = " | "
MIN_COLUMN = 20


def column_widths(left: list[str], right: list[str], width: int) -> tuple[int, int]:
    """The two columns' widths in a `width`-wide terminal: what their longest lines need when both fit, else
    the narrower side keeps what it needs (up to half) and the other takes the rest of the line."""
    available = width - len(GUTTER)
    need_left, need_right = (max((len(line.expandtabs()) for line in lines), default=0) for lines in (left, right))
    if need_left + need_right <= available:
        return max(need_left, 1), max(need_right, 1)
    half = available // 2
    if need_left <= half:
        left_width = need_left
    elif need_right <= half:
        left_width = available - need_right
    else:
        left_width = half
    return max(left_width, MIN_COLUMN), max(available - left_width, MIN_COLUMN)


def wrap_code(line: str, width: int) -> list[str]:
    """A line of code in pieces of at most `width` characters; a continuation is indented under its line."""
    line = line.expandtabs().rstrip()
    indent = " " * min(len(line) - len(line.lstrip()) + 4, width // 2)
    return textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def side_by_side(left: list[str], right: list[str], width: int) -> list[str]:
    """Two columns, `yours | solution`, as wide as the terminal allows; long lines wrapped in their column."""
    left_width, right_width = column_widths(left, right, width)
    pieces_left = [piece for line in left for piece in wrap_code(line, left_width)]
    pieces_right = [piece for line in right for piece in wrap_code(line, right_width)]
    rows = itertools.zip_longest(pieces_left, pieces_right, fillvalue="")
    return [f"{a:<{left_width}}{GUTTER}{b}".rstrip() for a, b in rows]


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


def compare_lines(step: str, colour: bool, width: int, mine: Path | None = None) -> list[str]:
    """The comparison of the learner's step (or `mine`) with the solution, every file of a folder step."""
    checklist = load_checklist(step)
    solution = REPO_ROOT / checklist.solution
    mine = mine or REPO_ROOT / checklist.skeleton
    if steps.step(step).folder:  # a Mojo package and its glue: every file of the folder
        solution, mine = solution.parent, (mine if mine.is_dir() else mine.parent)
    return [line for pair in file_pairs(mine, solution) for line in compare_file(*pair, colour, width)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check.compare", description="Show your TODO blocks beside the solution's."
    )
    parser.add_argument("step", type=step_id, help="step number, e.g. 03")
    parser.add_argument("--file", type=Path, help="your file (default: steps/step_NN.py)")
    parser.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    options = parser.parse_args(argv)
    if options.file is not None and not options.file.exists():
        print(f"error: {options.file} does not exist", file=sys.stderr)
        return 2
    colour = sys.stdout.isatty() and not options.no_color
    # The terminal's width ($COLUMNS first, as every tool reads it); a pipe gets a generous 160.
    width = shutil.get_terminal_size((160, 40)).columns
    print("\n".join(compare_lines(options.step, colour, width, options.file)))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly
    sys.exit(main())
