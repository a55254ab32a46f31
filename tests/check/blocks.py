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
