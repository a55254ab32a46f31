"""Every skeleton is its solution minus named blocks, literally, and solving a block only adds code."""

from __future__ import annotations

import re

import pytest

from tests.check.blocks import SOLUTION, blocks, file_pairs, is_placeholder, outside
from tests.check.compare import compare_file
from tests.check.engine import REPO_ROOT, available_steps, load_checklist
from tests.check.progress import hint_levels


def step_pairs() -> list:
    pairs = []
    for step in available_steps():
        checklist = load_checklist(step)
        skeleton, solution = REPO_ROOT / checklist.skeleton, REPO_ROOT / checklist.solution
        if solution.parent.name.startswith("solution_"):  # a folder step: every file in it
            skeleton, solution = skeleton.parent, solution.parent
        pairs += [
            pytest.param(*pair, id=str(pair[0].relative_to(REPO_ROOT))) for pair in file_pairs(skeleton, solution)
        ]
    return pairs


def code(line: str) -> str:
    """A line without its trailing comment (the files compared here put no `#` inside strings)."""
    return line.split("#", 1)[0].strip() if not line.lstrip().startswith(("#", '"""')) else ""


@pytest.mark.parametrize("skeleton, solution", step_pairs())
def test_skeleton_is_the_solution_outside_its_todo_blocks(skeleton, solution):
    mine, theirs = skeleton.read_text(), solution.read_text()
    todo, anchors = blocks(mine), blocks(theirs, SOLUTION)
    assert set(todo) <= set(anchors), (
        f"TODO blocks without a matching ANCHOR in the solution: {set(todo) - set(anchors)}"
    )
    assert outside(mine, todo) == outside(theirs, todo, SOLUTION)


@pytest.mark.parametrize("skeleton, solution", step_pairs())
def test_solving_a_block_only_adds_code(skeleton, solution):
    """Inside a TODO block: comments, placeholders, or lines the solution's block has too."""
    anchors = blocks(solution.read_text(), SOLUTION)
    for name, lines in blocks(skeleton.read_text()).items():
        given = {code(line) for line in anchors[name]}
        for line in lines:
            assert not code(line) or is_placeholder(line) or code(line) in given, (
                f"{skeleton.name}, block {name}: {line.strip()!r} is neither a placeholder nor in the solution"
            )


@pytest.mark.parametrize("step", available_steps())
def test_every_step_has_todo_blocks(step):
    skeleton = REPO_ROOT / load_checklist(step).skeleton
    files = skeleton.parent.glob("*") if skeleton.parent.name.startswith("step_") else [skeleton]
    assert any(blocks(path.read_text()) for path in files if path.is_file())


@pytest.mark.parametrize("step", ["01", "02"])
def test_the_numpy_solutions_are_the_lines_the_last_hint_teaches(step):
    """Teaching code: `make compare` and the book show the learner the lines the hints' last level gives,
    not a version tuned for speed (that one is the benchmark's own, bench/tuned_numpy.py)."""
    title, last = hint_levels(step)[-1]
    taught = [line.strip() for fence in re.findall(r"```python\n(.*?)```", last, re.S) for line in fence.splitlines()]
    solution = (REPO_ROOT / load_checklist(step).solution).read_text()
    written = {code(line) for lines in blocks(solution, SOLUTION).values() for line in lines}
    assert [line for line in taught if line], f"step {step}'s last hint level ({title!r}) shows no lines"
    assert [line for line in taught if line and line not in written] == []


def test_a_wrong_line_outside_the_blocks_is_caught(tmp_path):
    """The comparison is not vacuous: one changed line outside a block makes the files differ."""
    skeleton = (REPO_ROOT / "steps" / "step_01.py").read_text()
    solution = (REPO_ROOT / "solutions" / "solution_01.py").read_text()
    drifted = skeleton.replace("cache = (x, mean, rstd, gamma)", "cache = (x, mean, var, gamma)")
    assert outside(drifted, ["forward"]) != outside(solution, ["forward"], SOLUTION)


def test_compare_shows_each_block_beside_the_solutions(tmp_path):
    mine = tmp_path / "step_01.py"
    mine.write_text((REPO_ROOT / "steps" / "step_01.py").read_text().replace("mean = None", "mean = x.mean(1)"))
    lines = compare_file(mine, REPO_ROOT / "solutions" / "solution_01.py", colour=False, width=200)
    assert lines[0].startswith("── block `forward` ──")
    columns = [line.split(" | ", 1) for line in lines[1:] if " | " in line]
    assert any("mean = x.mean(1)" in left for left, _ in columns)  # yours on the left
    assert any("x.mean(axis=1, keepdims=True)" in right for _, right in columns)  # the solution's on the right
    assert not any(line.startswith("── outside") for line in lines)


def test_compare_falls_back_to_a_diff_without_markers(tmp_path):
    mine = tmp_path / "step_01.py"
    mine.write_text("import numpy as np\n")
    lines = compare_file(mine, REPO_ROOT / "solutions" / "solution_01.py", colour=False, width=120)
    assert lines[0].startswith("--- yours:") and any(line.startswith("+def layernorm_forward") for line in lines)
