"""Run a step's checklist on a file, and hold the zoo of implementations to its expectations.

Each file in `tests/zoo/step_NN/` starts with a docstring whose first line is either
`EXPECT: pass` (a correct implementation, written differently from the solution) or
`EXPECT: <part of a check's name> :: <part of the hint>` (a known mistake, and the words the
learner must see for it).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tests.check.__main__ import _parser
from tests.check.engine import REPO_ROOT, STRICT_ENV, Report, load_checklist, run_checklist

ZOO = REPO_ROOT / "tests" / "zoo"


def check_file(step: str, path: Path, *extra_args: str) -> Report:
    """The checker's report for `path`, with a checklist bug raising instead of hiding as ❌."""
    checklist = load_checklist(step)
    options = _parser(checklist.add_arguments).parse_args([step, "--file", str(path), *extra_args])
    previous = os.environ.get(STRICT_ENV)
    os.environ[STRICT_ENV] = "1"
    try:
        return run_checklist(checklist, Path(path), options)
    finally:
        if previous is None:
            os.environ.pop(STRICT_ENV, None)
        else:
            os.environ[STRICT_ENV] = previous


def expectation(path: Path) -> tuple[str, str] | None:
    """None for `EXPECT: pass`, else (part of the failing check's name, part of its hint)."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = docstring.splitlines()[0] if docstring else ""
    if not first.startswith("EXPECT:"):
        raise ValueError(f"{path.name}: the docstring must start with 'EXPECT: pass' or 'EXPECT: check :: hint'")
    spec = first.removeprefix("EXPECT:").strip()
    if spec == "pass":
        return None
    check_part, _, hint_part = (part.strip() for part in spec.partition("::"))
    return check_part, hint_part


def zoo_cases(step: str):
    return [pytest.param(path, id=path.name) for path in sorted((ZOO / f"step_{step}").glob("*.py"))]


def failures(report: Report) -> str:
    return "\n".join(f"{r.name}: {r.message}" for r in report.results if not r.passed) or "(none)"


def assert_zoo_case(step: str, path: Path, *extra_args: str) -> Report:
    report = check_file(step, path, *extra_args)
    expected = expectation(path)
    if expected is None:
        assert report.passed, f"{path.name} is correct but was rejected:\n{failures(report)}"
        return report
    check_part, hint_part = expected
    matching = [r for r in report.results if check_part.lower() in r.name.lower()]
    assert matching, f"{path.name}: no check named like {check_part!r}"
    assert not report.passed, f"{path.name} is wrong but every check passed"
    failed = [r for r in matching if not r.passed]
    assert failed, f"{path.name}: check {check_part!r} passed; failures were:\n{failures(report)}"
    assert any(hint_part.lower() in r.message.lower() for r in failed), (
        f"{path.name}: {check_part!r} failed without the hint {hint_part!r}:\n"
        + "\n".join(f"{r.name}: {r.message}" for r in failed)
    )
    return report


def checks_no_wrong_file_fails(step: str) -> set[str]:
    """Names of the step's checks that no `bad_*` zoo file fails: checks that may be unable to fail."""
    never = {check.name for check in load_checklist(step).checks}
    for path in sorted((ZOO / f"step_{step}").glob("bad_*.py")):
        never -= {result.name for result in check_file(step, path).results if not result.passed}
    return never
