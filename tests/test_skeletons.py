"""Every skeleton is its solution minus named blocks, literally, and solving a block only adds code."""

from __future__ import annotations

import re

import pytest

from tests.check.blocks import SOLUTION, blocks, code, file_pairs, literal_problems
from tests.check.compare import compare_file
from tests.check.engine import REPO_ROOT, load_checklist
from tests.check.progress import hint_levels
from tests.check.steps import STEPS


def step_pairs() -> list:
    pairs = []
    for record in STEPS:  # a folder step pairs every file of its folder
        pairs += [
            pytest.param(*pair, id=str(pair[0].relative_to(REPO_ROOT)))
            for pair in file_pairs(REPO_ROOT / record.learner, REPO_ROOT / record.solution)
        ]
    return pairs


@pytest.mark.parametrize("skeleton, solution", step_pairs())
def test_skeleton_is_the_solution_minus_its_todo_blocks(skeleton, solution):
    """Identical outside the TODO blocks; inside one, comments, placeholders, or lines the solution's block has
    too (solving a block only adds code). `python -m tests.check.dev check` holds every step to the same rule."""
    assert literal_problems(skeleton, solution, REPO_ROOT) == []


@pytest.mark.parametrize("record", STEPS, ids=[record.number for record in STEPS])
def test_every_step_has_todo_blocks(record):
    assert any(blocks(path.read_text()) for path in record.learner_files())


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


def test_a_wrong_line_outside_or_inside_a_block_is_caught(tmp_path):
    """The rule is not vacuous: a changed line outside a block, a line the solution's block lacks, a TODO block
    without its ANCHOR are each named."""
    solution = REPO_ROOT / "solutions" / "solution_01.py"
    skeleton = (REPO_ROOT / "steps" / "step_01.py").read_text()
    edits = [
        ("cache = (x, mean, rstd, gamma)", "cache = (x, mean, var, gamma)", "outside its TODO blocks"),
        ("    mean = None\n", "    mean = x.sum(axis=1)\n", "'mean = x.sum(axis=1)' is neither a placeholder nor"),
        (": forward\n", ": forwards\n", "TODO block `forwards` has no ANCHOR"),  # both markers renamed
    ]
    for old, new, expected in edits:
        drifted = tmp_path / "step_01.py"
        drifted.write_text(skeleton.replace(old, new))
        assert any(expected in problem for problem in literal_problems(drifted, solution)), (old, expected)
    assert literal_problems(REPO_ROOT / "steps" / "step_01.py", solution) == []


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
