"""The maintainer's loop: `dev check` holds the course to its step records, `dev new` adds a step that runs at once.

CI runs `dev check --fast` through the first test: the steps it leaves out (the MAX, Mojo and PyTorch tiers) have
their skeletons and solutions run by tests/test_steps.py, in their own tiers.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.check.dev import SLOW_TIERS, course_problems
from tests.check.engine import REPO_ROOT
from tests.check.steps import STEPS
from tests.working_tree import checkout_with_this_venv, copy_working_tree


def run(root: Path, *command: str) -> subprocess.CompletedProcess:
    """`python -m COMMAND...` in the copy at `root` (its own tests package: the one `python -m` finds first)."""
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=root, capture_output=True, text=True, timeout=600, check=False
    )


def fingerprint(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_dev_check_fast_passes_on_the_repository():
    result = run(REPO_ROOT, "tests.check.dev", "check", "--fast")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""  # the problems, one a line: none
    ran = ", ".join(record.number for record in STEPS if record.tier not in SLOW_TIERS)
    assert f"checker run on steps {ran};" in result.stderr
    assert ".github/workflows/check.yml names no step (it runs `status --started`" in result.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the repository's files, for planting one inconsistency at a time (each test puts it back)."""
    return copy_working_tree(tmp_path_factory.mktemp("course"))


PLANTED = {
    "a Makefile without s03": (
        "Makefile",
        "STEPS := s01 s02 s03 ",
        "STEPS := s01 s02 ",
        "Makefile: no s03 in STEPS, though tests/check/steps.py has that step",
    ),
    "a page without its checklist": (
        "docs/src/step_02.md",
        "{{#checklist 02}}",
        "(the checks)",
        "docs/src/step_02.md: has no {{#checklist 02}} of its own (found: none)",
    ),
    "a skeleton that differs outside its blocks": (
        "steps/step_01.py",
        "cache = (x, mean, rstd, gamma)",
        "cache = (x, mean, var, gamma)",
        "steps/step_01.py: differs from solutions/solution_01.py outside its TODO blocks: 'cache = (x, mean, var, "
        "gamma)",
    ),
    "a pixi.toml without s04": (
        "pixi.toml",
        's04 = "python -m tests.check 04"\n',
        "",
        "pixi.toml: no s04 in the tasks, though tests/check/steps.py has that step",
    ),
    "a README row naming another file": (
        "README.md",
        "| `…/step_05.py`, `…/solution_05.py` |",
        "| `…/step_5.py`, `…/solution_05.py` |",
        "README.md: the step table's row 05 does not name `steps/step_05.py`",
    ),
    "contents without step 06": (
        "docs/src/SUMMARY.md",
        "- [Step 06: a LayerNorm kernel in Mojo](step_06.md)\n",
        "",
        "docs/src/SUMMARY.md: no step_06 in the book's contents, though tests/check/steps.py has that step",
    ),
    "a page whose Next skips a step": (
        "docs/src/step_03.md",
        "Next: [step 04](step_04.md)",
        "Next: [step 05](step_05.md)",
        "docs/src/step_03.md: its Next link leads to step_05.md, not step 04",
    ),
    "hints without levels": (
        "tests/check/hints/step_01.md",
        "## ",
        "### ",
        "tests/check/hints/step_01.md: no level (a hint level is a `## ` section)",
    ),
}


@pytest.mark.parametrize("planted", PLANTED.values(), ids=PLANTED.keys())
def test_dev_check_names_a_planted_inconsistency_in_one_line(course, planted):
    relative, old, new, expected = planted
    assert course_problems(course) == (
        [],
        [
            ".github/workflows/check.yml names no step (it runs `status --started`: "
            "the steps the learner has started): nothing to hold to the records"
        ],
    )
    original = (course / relative).read_text(encoding="utf-8")
    assert old in original, f"{relative} no longer holds {old!r}: plant the inconsistency another way"
    (course / relative).write_text(original.replace(old, new), encoding="utf-8")
    try:
        problems, _ = course_problems(course)
    finally:
        (course / relative).write_text(original, encoding="utf-8")
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_dev_check_exits_1_with_the_problem_on_stdout(course):
    makefile = (course / "Makefile").read_text(encoding="utf-8")
    (course / "Makefile").write_text(makefile.replace(" s03 ", " "), encoding="utf-8")
    try:
        result = run(course, "tests.check.dev", "check", "--static")
    finally:
        (course / "Makefile").write_text(makefile, encoding="utf-8")
    assert result.returncode == 1, result.stderr
    assert result.stdout == "Makefile: no s03 in STEPS, though tests/check/steps.py has that step\n"
    assert run(course, "tests.check.dev", "check", "--static").returncode == 0
    assert run(course, "tests.check.dev", "check", "99").returncode == 2  # no such step: a usage error


REFUSED = {
    "an existing step": (["03", "Another step"], 2, "step 03 exists"),
    "a malformed number": (["7", "RMSNorm in NumPy"], 2, "expected a two-digit step number such as 07, got '7'"),
    "an empty title": (["07", "  "], 2, "the title is empty"),
    "a title that breaks a table": (["07", "a | b"], 2, "the title holds '|'"),
    "a folder step": (["07", "A kernel", "--folder"], 2, "--folder is not supported yet"),
    "a file already there": (["08", "RMSNorm in NumPy"], 1, "steps/step_08.py exists already, with no record"),
}


def test_dev_new_refuses_and_writes_nothing(course):
    (course / "steps" / "step_08.py").write_text("# a step in the making\n", encoding="utf-8")
    before = fingerprint(course)
    try:
        for arguments, code, message in REFUSED.values():
            result = run(course, "tests.check.dev", "new", *arguments)
            assert (result.returncode, result.stdout) == (code, ""), result.stderr
            assert message in result.stderr and "(nothing written)" in result.stderr, result.stderr
            assert fingerprint(course) == before, arguments
    finally:
        (course / "steps" / "step_08.py").unlink()


def test_dev_new_scaffolds_a_step_that_runs_at_once(tmp_path):
    repo = checkout_with_this_venv(tmp_path / "repo")
    created = run(repo, "tests.check.dev", "new", "07", "RMSNorm in NumPy")
    assert created.returncode == 0, created.stdout + created.stderr
    assert "commit" in created.stdout  # `reset` restores a skeleton from git: the new step needs a commit

    solution = run(repo, "tests.check", "07", "--solution")
    assert solution.returncode == 0, solution.stdout + solution.stderr
    assert solution.stdout.startswith("Running checks for Step 07: RMSNorm in NumPy")
    skeleton = run(repo, "tests.check", "07")
    assert skeleton.returncode == 1, skeleton.stdout + skeleton.stderr
    assert "❌" in skeleton.stdout and "Traceback" not in skeleton.stdout + skeleton.stderr

    checked = run(repo, "tests.check.dev", "check", "--fast")
    assert (checked.returncode, checked.stdout) == (0, ""), checked.stderr
    ran = ", ".join([*(record.number for record in STEPS if record.tier not in SLOW_TIERS), "07"])
    assert f"checker run on steps {ran};" in checked.stderr  # step 07 was run
    lint = run(repo, "ruff", "check", "--quiet", ".")
    assert lint.returncode == 0 and run(repo, "ruff", "format", "--check", ".").returncode == 0, lint.stdout

    # `reset 07` takes the shipped skeleton from git once the step is committed
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "step 07"]):
        subprocess.run(git + command, cwd=repo, check=True, capture_output=True)
    shipped = (repo / "steps" / "step_07.py").read_text()
    (repo / "steps" / "step_07.py").write_text(shipped.replace("y = None", "y = x"))
    assert run(repo, "tests.check", "reset", "07", "--yes").returncode == 0
    assert (repo / "steps" / "step_07.py").read_text() == shipped
