"""Named blocks: a skeleton is its solution with some blocks replaced by TODO blocks of the same name.

The solution marks a block `# ANCHOR: name` ... `# ANCHOR_END: name` (the same markers the book's
`{{#include file:name}}` uses); the skeleton marks its TODO block `# TODO-BLOCK: name` ...
`# TODO-BLOCK-END: name`. Outside those blocks the two files are identical, line for line.
"""

from __future__ import annotations

import re
from pathlib import Path

SOLUTION = ("ANCHOR", "ANCHOR_END")
SKELETON = ("TODO-BLOCK", "TODO-BLOCK-END")
MARKER = re.compile(r"^\s*#\s*(ANCHOR|ANCHOR_END|TODO-BLOCK|TODO-BLOCK-END):\s*(\S+)\s*$")
# What an untouched TODO block holds besides comments: placeholders a learner replaces.
PLACEHOLDER = re.compile(
    r"^\s*(\w+(\.\w+)* = None|return None|pass|raise NotImplementedError\(.*\)|raise Error\(\"TODO.*)\s*(#.*)?$"
)


def is_placeholder(line: str) -> bool:
    """A blank line, a comment, or a placeholder: nothing the learner has written yet."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or bool(PLACEHOLDER.match(line))


def blocks(text: str, kind=SKELETON) -> dict[str, list[str]]:
    """name -> the lines inside that block (markers of any block left out; blocks may nest)."""
    open_blocks: dict[str, list[str]] = {}
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        marker = MARKER.match(line)
        if marker and marker.group(1) == kind[0]:
            open_blocks[marker.group(2)] = []
        elif marker and marker.group(1) == kind[1] and marker.group(2) in open_blocks:
            found[marker.group(2)] = open_blocks.pop(marker.group(2))
        elif not marker:
            for content in open_blocks.values():
                content.append(line)
    return found


def outside(text: str, names, kind=SKELETON) -> list[str]:
    """The lines outside the blocks `names` of `kind`, with every marker line left out."""
    kept, inside = [], set()
    for line in text.splitlines():
        marker = MARKER.match(line)
        if marker and marker.group(2) in names and marker.group(1) in kind:
            (inside.add if marker.group(1) == kind[0] else inside.discard)(marker.group(2))
        elif not marker and not inside:
            kept.append(line)
    return kept


def file_pairs(skeleton: Path, solution: Path):
    """(skeleton file, solution file) pairs; a step that is a folder pairs its files by name."""
    if not solution.is_dir():
        yield skeleton, solution
        return
    for reference in sorted(p for p in solution.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        relative = reference.relative_to(solution)
        yield skeleton / relative.with_name(relative.name.replace("solution_", "step_")), reference


def code(line: str) -> str:
    """A line without its trailing comment (the files compared here put no `#` inside strings)."""
    return line.split("#", 1)[0].strip() if not line.lstrip().startswith(("#", '"""')) else ""


def literal_problems(skeleton: Path, solution: Path, root: Path | None = None) -> list[str]:
    """What keeps `skeleton` from being `solution` minus its TODO blocks, one line each (none: it is).

    The rules: every TODO block has its ANCHOR in the solution; outside those blocks the two files are
    identical, line for line; inside one, a line is a comment, a placeholder, or a line of the solution's
    block (solving a block only adds code). `root`: paths in the messages are relative to it."""
    name, reference = (str(p.relative_to(root)) if root else p.name for p in (skeleton, solution))
    mine, theirs = skeleton.read_text(encoding="utf-8"), solution.read_text(encoding="utf-8")
    todo, anchors = blocks(mine), blocks(theirs, SOLUTION)
    missing = sorted(todo.keys() - anchors)
    problems = [f"{name}: TODO block `{block}` has no ANCHOR `{block}` in {reference}" for block in missing]
    if problems:  # the lines outside would differ too: the missing anchor is the news
        return problems
    kept, wanted = outside(mine, todo), outside(theirs, todo, SOLUTION)
    if kept != wanted:
        first = next(
            (i for i, (a, b) in enumerate(zip(kept, wanted, strict=False)) if a != b), min(len(kept), len(wanted))
        )
        line, theirs_line = (lines[first].strip() if first < len(lines) else "(the end)" for lines in (kept, wanted))
        problems.append(
            f"{name}: differs from {reference} outside its TODO blocks: {line!r} where the solution has {theirs_line!r}"
        )
    for block, lines in todo.items():
        given = {code(line) for line in anchors.get(block, [])}
        problems += [
            f"{name}, block `{block}`: {line.strip()!r} is neither a placeholder nor in the solution's block"
            for line in lines
            if code(line) and not is_placeholder(line) and code(line) not in given
        ]
    return problems
