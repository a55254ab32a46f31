"""Step 06: the checklist against the solution, the skeleton, and a zoo of kernels and glue files.

Step 06 is a folder, so a zoo case is a folder too: `tests/zoo/step_06/<case>/` holds only the
files that differ from the solution (`layer_norm.mojo`, `step_06.py`), whose first line says
`EXPECT: pass` or `EXPECT: <part of the failing check's name> :: <part of its hint>`. Each case is
assembled in a temporary folder. Every case compiles Mojo, so this file takes minutes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT
from tests.check.step_06 import compiler_message
from tests.zoo_helpers import check_file, failures

STEP = "06"
SKELETON = REPO_ROOT / "steps" / "step_06"
SOLUTION = REPO_ROOT / "solutions" / "solution_06"
ZOO = REPO_ROOT / "tests" / "zoo" / "step_06"
FULL_RUN = {"ok_welford_chunked"}  # the other cases skip the whole-graph compiles


def expectation(case: Path) -> tuple[str, str] | None:
    """None for `EXPECT: pass`, else (part of the failing check's name, part of its hint)."""
    for file in sorted(case.iterdir()):
        match = re.search(r"EXPECT:\s*(.+)", file.read_text().splitlines()[0])
        if match:
            spec = match.group(1).strip()
            if spec == "pass":
                return None
            check_part, _, hint_part = (part.strip() for part in spec.partition("::"))
            return check_part, hint_part
    raise ValueError(f"{case.name}: no file starts with an EXPECT line")


def assemble(case: Path) -> Path:
    """The solution's folder with the case's files swapped in; returns the glue file to check.

    MAX caches compiled kernels per package path, so the folder's name is fixed by its content: a
    second run of the suite finds the kernels compiled, an edited case compiles afresh.
    """
    sources = {"__init__.mojo": SOLUTION / "__init__.mojo", "layer_norm.mojo": SOLUTION / "layer_norm.mojo",
               "step_06.py": SOLUTION / "solution_06.py"}
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


def zoo_cases():
    return [pytest.param(case, id=case.name) for case in sorted(p for p in ZOO.iterdir() if p.is_dir())]


@pytest.mark.parametrize("case", zoo_cases())
def test_zoo(case: Path):
    expected = expectation(case)
    if case.name in FULL_RUN:
        options = []
    elif expected is None:
        options = ["--quick"]  # skips the compiled Module and the speed: each is a cold compile
    else:
        options = ["--only", expected[0]]  # the check that must fail; the package still compiles
    report = check_file(STEP, assemble(case), *options)
    if expected is None:
        skipped = [r for r in report.results if r.message.startswith("Not run: --quick")]
        rejected = [r for r in report.results if not r.passed and r not in skipped]
        assert not rejected, f"{case.name} is correct but was rejected:\n{failures(report)}"
        assert len(skipped) == (0 if case.name in FULL_RUN else 2)
        return
    check_part, hint_part = expected
    matching = [r for r in report.results if check_part.lower() in r.name.lower()]
    assert matching, f"{case.name}: no check named like {check_part!r}"
    failed = [r for r in matching if not r.passed]
    assert failed, f"{case.name}: check {check_part!r} passed; failures were:\n{failures(report)}"
    assert any(hint_part.lower() in r.message.lower() for r in failed), (
        f"{case.name}: {check_part!r} failed without the hint {hint_part!r}:\n"
        + "\n".join(f"{r.name}: {r.message}" for r in failed))


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "tests.check", STEP, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)


def test_solution_passes_and_reports_speed():
    before = _snapshot(SOLUTION)
    result = _run_cli("--solution")
    assert result.returncode == 0, result.stdout + result.stderr
    speed = [line for line in result.stdout.splitlines() if "speed" in line]
    assert speed and speed[0].startswith("✅") and "built-in" in speed[0], result.stdout
    assert re.search(r"yours [\d.]+ ms, built-in [\d.]+ ms", speed[0]), speed[0]
    assert _snapshot(SOLUTION) == before, "checking the solution wrote files next to it"


def test_skeleton_fails_cleanly_and_leaves_steps_untouched():
    before = _snapshot(SKELETON)
    result = _run_cli()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "❌" in result.stdout
    assert "Still a TODO" in result.stdout  # the kernel's raise, and the Python TODOs
    assert "NotImplementedError" in result.stdout
    assert _snapshot(SKELETON) == before, "checking the skeleton wrote files into steps/"


def test_skeleton_keeps_the_solutions_given_kernel():
    # names, signatures and docstrings of step_06.py: tests/test_workspace.py, as for every step
    solution_kernel = (SOLUTION / "layer_norm.mojo").read_text()
    skeleton_kernel = (SKELETON / "layer_norm.mojo").read_text()
    naive = solution_kernel.split("# ANCHOR: naive\n")[1].split("# ANCHOR_END: naive")[0]
    assert naive in skeleton_kernel, "the skeleton's naive kernel drifted from the solution's"
    assert '@extensibility.register("layer_norm_fast")' in skeleton_kernel
    assert (SKELETON / "__init__.mojo").exists()


def test_compiler_message_keeps_file_line_and_error():
    stderr = (
        "Failed to initialize Crashpad.  Crash reporting will not be available.\n"
        f"{SKELETON}/layer_norm.mojo:31:24: error: expected ')' in call argument list\n"
        "            var squares: Float32 = 0\n"
        "                       ^\n"
        ".venv/bin/mojo: error: failed to parse the provided Mojo source module\n"
    )
    message = compiler_message(stderr, SKELETON)
    assert message.startswith("steps/step_06/layer_norm.mojo:31:24: error: expected ')'"), message
    assert "Crashpad" not in message and "failed to parse" not in message
