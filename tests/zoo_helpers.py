"""Run a step's checklist on a file, and hold the zoo of implementations to its expectations.

A zoo case is a file `tests/zoo/step_NN/<case>.py`, or for step 06 (a folder step) a folder holding
only the files that differ from the solution. Its first line (the docstring's, or a Mojo comment's)
says `EXPECT: pass` (a correct implementation, written differently from the solution) or
`EXPECT: <part of a check's name> :: <part of the hint>` (a known mistake, and the words the
learner must see for it); a line `OPTIONS: ...` adds checker options (e.g. `--timeout-scale 0.1`
for a case that hangs on purpose). Each case is checked once per test run; the tests share the report.
A case whose check this machine cannot run (a GPU check without a GPU: the check's `skip_if`) is
skipped by pytest, with the checker's reason.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.check.cli import parse_check_arguments
from tests.check.engine import REPO_ROOT, Report, load_checklist, run_checklist

ZOO = REPO_ROOT / "tests" / "zoo"
FOLDER_STEP_SOLUTION = REPO_ROOT / "solutions" / "solution_06"
EXTRA_OPTIONS = {"03": ("--device", "cpu")}  # the checks of a CPU machine, whatever MAX sees
# Step 06's zoo judges CPU kernels (most cases have no GPU path); a GPU case says `OPTIONS: --device auto`.
ZOO_OPTIONS = {"06": ("--device", "cpu")}
FULL_RUN = {"ok_welford_chunked"}  # step 06: the one correct case that also runs the slow checks


def check_file(step: str, path: Path, *extra_args: str) -> Report:
    """The checker's report for `path`, with a checklist bug raising instead of hiding as ❌."""
    checklist, options = parse_check_arguments([step, "--file", str(path), *extra_args])
    return run_checklist(checklist, Path(path), options, strict=True)


def expectation(case: Path) -> tuple[str, str] | None:
    """None for `EXPECT: pass`, else (part of the failing check's name, part of its hint)."""
    files = sorted(case.iterdir()) if case.is_dir() else [case]
    for file in files:
        match = re.search(r"EXPECT:\s*(.+)", file.read_text().lstrip('"# \n').splitlines()[0])
        if match:
            spec = match.group(1).strip().removesuffix('"""').strip()
            if spec == "pass":
                return None
            check_part, _, hint_part = (part.strip() for part in spec.partition("::"))
            return check_part, hint_part
    raise ValueError(f"{case.name}: its first line must say 'EXPECT: pass' or 'EXPECT: check :: hint'")


def zoo_cases(step: str) -> list:
    folder = ZOO / f"step_{step}"
    cases = sorted(p for p in folder.iterdir() if p.is_dir() or p.suffix == ".py")
    return [pytest.param(step, case, id=f"{step}-{case.name}") for case in cases]


def assemble(case: Path) -> Path:
    """A folder-step case: the solution's folder with the case's files swapped in; returns the glue file.

    MAX caches compiled kernels per package path, so the folder's name is fixed by its content: a
    second run of the suite finds the kernels compiled, an edited case compiles afresh.
    """
    sources = {p.name: p for p in FOLDER_STEP_SOLUTION.iterdir() if p.is_file()}
    sources["step_06.py"] = sources.pop("solution_06.py")
    sources.update({file.name: file for file in case.iterdir()})
    digest = hashlib.sha256(b"".join(name.encode() + path.read_bytes() for name, path in sorted(sources.items())))
    folder = Path(tempfile.gettempdir()) / "layernorm-zoo-step06" / f"{case.name}-{digest.hexdigest()[:12]}" / "step_06"
    if not (folder / "step_06.py").exists():
        staging = folder.parent / f"staging-{os.getpid()}"
        staging.mkdir(parents=True, exist_ok=True)
        for name, path in sources.items():
            shutil.copy(path, staging / name)
        staging.rename(folder)
    return folder / "step_06.py"


def case_options(step: str, case: Path) -> tuple[str, ...]:
    """The case's own `OPTIONS:` line (e.g. a scaled-down time limit), the step's, and for step 06, which
    compiles Mojo for every case, the narrowing: a wrong case runs only its check, a right one skips the slow ones."""
    files = [p for p in case.iterdir() if p.is_file()] if case.is_dir() else [case]
    own = [m.group(1).split() for f in files for m in [re.search(r"^#?\s*OPTIONS:\s*(.+)$", f.read_text(), re.M)] if m]
    options = EXTRA_OPTIONS.get(step, ()) + ZOO_OPTIONS.get(step, ()) + tuple(own[0] if own else ())
    if case.is_dir() and case.name not in FULL_RUN:
        expected = expectation(case)
        options += ("--quick",) if expected is None else ("--only", expected[0])
    return options


@functools.cache
def zoo_report(step: str, case: Path) -> Report:
    """The report for one zoo case, computed once per test run."""
    return check_file(step, assemble(case) if case.is_dir() else case, *case_options(step, case))


@functools.cache
def cli_json(step: str, *args: str) -> tuple[int, dict]:
    """(exit code, JSON report) of `python -m tests.check NN --json ARGS` (strict), once per test run."""
    command = [sys.executable, "-m", "tests.check", step, *EXTRA_OPTIONS.get(step, ()), "--strict", "--json", *args]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def failures(report: Report) -> str:
    return "\n".join(f"{r.name}: {r.message}" for r in report.results if r.status == "failed") or "(none)"


def machine_skips(step: str) -> dict[str, str]:
    """The step's checks this machine cannot run with the default options (e.g. GPU checks without a GPU), and why."""
    checklist, options = parse_check_arguments([step, *EXTRA_OPTIONS.get(step, ())])
    reasons = {check.name: check.skip_if(options) if check.skip_if else None for check in checklist.checks}
    return {name: reason for name, reason in reasons.items() if reason}


def assert_zoo_case(step: str, case: Path) -> Report:
    report, expected = zoo_report(step, case), expectation(case)
    if expected is None:
        assert report.passed, f"{case.name} is correct but was rejected:\n{failures(report)}"
        return report
    check_part, hint_part = expected
    matching = [r for r in report.results if check_part.lower() in r.name.lower()]
    assert matching, f"{case.name}: no check named like {check_part!r}"
    unrunnable = [r for r in matching if r.status == "skipped" and r.name in machine_skips(step)]
    if unrunnable and len(unrunnable) == len(matching):
        pytest.skip(f"{case.name}: {unrunnable[0].name}: {unrunnable[0].message}")
    assert not report.passed, f"{case.name} is wrong but every check passed"
    failed = [r for r in matching if r.status == "failed"]
    assert failed, f"{case.name}: check {check_part!r} passed; failures were:\n{failures(report)}"
    assert any(hint_part.lower() in r.message.lower() for r in failed), (
        f"{case.name}: {check_part!r} failed without the hint {hint_part!r}:\n"
        + "\n".join(f"{r.name}: {r.message}" for r in failed)
    )
    return report


def checks_no_wrong_file_fails(step: str) -> set[str]:
    """Names of the step's checks that no wrong zoo case fails: checks that may be unable to fail."""
    never = {check.name for check in load_checklist(step).checks} - set(machine_skips(step))
    for _, case in (param.values for param in zoo_cases(step)):
        if expectation(case) is not None:
            never -= {r.name for r in zoo_report(step, case).results if r.status == "failed"}
    return never
