"""Step 03 (LayerNorm as a MAX module): the checker against the solution, the skeleton and a zoo.

Each checker run starts a process that imports MAX; with a warm kernel cache a run takes
seconds, the first run on a machine compiles MAX kernels and takes minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.check.__main__ import _parser
from tests.check.engine import REPO_ROOT, load_checklist
from tests.zoo_helpers import assert_zoo_case, check_file, zoo_cases

STEP = "03"
SEED_LINES = [
    "functional module is correctly imported as F from max.experimental",
    "Tensor is correctly imported from max.experimental.tensor",
    "LayerNorm class exists",
    "Tensor.ones is used for weight initialization",
    "Tensor.zeros is used for bias initialization",
    "F.layer_norm is used (forward calls it)",
    "F.layer_norm is used with correct parameters (gamma, beta, epsilon)",
    "All placeholder 'None' values have been replaced",
    "LayerNorm class can be instantiated",
    "LayerNorm.weight is initialized",
    "LayerNorm.bias is initialized",
    "LayerNorm.eps has correct default value: 1e-05",
]
BEYOND_SEED = ["2-D (batch, dim) and 3-D (batch, seq, dim)", "layer_norm_from_scratch", "compile_layer_norm"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAYERNORM_CHECK_STRICT="1")
    return subprocess.run([sys.executable, "-m", "tests.check", STEP, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def solution_run():
    return run_cli("--solution", "--device", "cpu")


@pytest.fixture(scope="module")
def skeleton_run():
    return run_cli("--device", "cpu")


def test_solution_passes_every_line(solution_run):
    assert solution_run.returncode == 0, solution_run.stdout + solution_run.stderr
    lines = [line for line in solution_run.stdout.splitlines() if line.startswith(("✅", "❌"))]
    assert lines and all(line.startswith("✅") for line in lines), solution_run.stdout
    for name in SEED_LINES + BEYOND_SEED:
        assert any(name in line for line in lines), f"missing line {name!r}:\n{solution_run.stdout}"
    assert "first run takes" in solution_run.stdout  # the compile-time note comes before the checks
    assert "Ran on cpu:0." in solution_run.stdout


def test_seed_lines_come_first_in_the_seed_order():
    names = [check.name for check in load_checklist(STEP).checks]
    for name, expected in zip(names, SEED_LINES, strict=False):
        assert expected in name
    assert len(names) == len(SEED_LINES) + len(BEYOND_SEED)


def test_skeleton_fails_cleanly(skeleton_run):
    out = skeleton_run.stdout + skeleton_run.stderr
    assert skeleton_run.returncode == 1, out
    assert "Traceback" not in out
    assert "✅ step_03.py imports" in out  # the skeleton imports; its TODOs fail as ❌ lines
    failed = [line for line in out.splitlines() if line.startswith("❌")]
    assert len(failed) >= 10, out
    assert "placeholder" in out


def test_json_report_of_the_solution():
    result = run_cli("--solution", "--device", "cpu", "--json")
    report = json.loads(result.stdout)
    assert report["passed"] and result.returncode == 0
    assert len(report["checks"]) == 1 + len(SEED_LINES) + len(BEYOND_SEED)


@pytest.mark.parametrize("path", zoo_cases(STEP))
def test_zoo(path):
    assert_zoo_case(STEP, path, "--device", "cpu")


def test_zoo_has_enough_cases():
    cases = [param.values[0].name for param in zoo_cases(STEP)]
    assert sum(name.startswith("bad_") for name in cases) >= 10
    assert sum(name.startswith("ok_") for name in cases) >= 3


# -- the options and notes of the checklist --------------------------------------------------
def parse(*args):
    return _parser(load_checklist(STEP).add_arguments).parse_args([STEP, *args])


def test_device_option():
    assert parse().device == "auto"
    assert parse("--device", "cpu").device == "cpu"
    assert parse("--solution", "--device", "gpu").device == "gpu"
    with pytest.raises(SystemExit):
        parse("--device", "tpu")


def test_version_note_when_max_differs(monkeypatch):
    import tests.check.step_03 as checklist_module

    monkeypatch.setattr(checklist_module, "installed_max_version", lambda: "26.1.0")
    notes = load_checklist(STEP).notes(parse())
    assert "MAX 26.1.0 is installed" in notes[0] and checklist_module.EXPECTED_MAX in notes[0]
    monkeypatch.setattr(checklist_module, "installed_max_version", lambda: None)
    assert "not installed" in load_checklist(STEP).notes(parse())[0]
    monkeypatch.setattr(checklist_module, "installed_max_version", lambda: checklist_module.EXPECTED_MAX)
    notes = load_checklist(STEP).notes(parse())
    assert len(notes) == 1 and "first run" in notes[0]


def test_expected_version_is_the_pin():
    import tests.check.step_03 as checklist_module

    assert f'"max=={checklist_module.EXPECTED_MAX}"' in (REPO_ROOT / "pyproject.toml").read_text()


def accelerator_count() -> int:
    from max.driver import accelerator_count

    return accelerator_count()


def test_gpu_without_accelerator_is_a_clear_failure(tmp_path):
    if accelerator_count():
        pytest.skip("this machine has an accelerator; see test_solution_on_gpu")
    report = check_file(STEP, REPO_ROOT / "solutions" / "solution_03.py", "--device", "gpu")
    assert not report.passed
    assert any("MAX sees no accelerator" in result.message for result in report.results)


def test_solution_on_gpu():
    if not accelerator_count():
        pytest.skip("no accelerator visible to MAX")
    report = check_file(STEP, REPO_ROOT / "solutions" / "solution_03.py", "--device", "gpu")
    assert report.passed, [(r.name, r.message) for r in report.results if not r.passed]


# -- the solution's own behaviour on bad input (runs MAX in this process) ---------------------------
@pytest.fixture(scope="module")
def solution():
    sys.path.insert(0, str(REPO_ROOT))
    from solutions import solution_03

    return solution_03


def test_bad_input_errors(solution):
    from max.experimental.tensor import Tensor

    layer = solution.LayerNorm(8)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(\.\.\., 8\), got \(2, 4\)"):
        layer(Tensor.from_dlpack(np.ones((2, 4), np.float32)))
    with pytest.raises(TypeError, match="floating-point input, got int32"):
        layer(Tensor.from_dlpack(np.ones((2, 8), np.int32)))
    with pytest.raises(TypeError, match="Tensor.from_dlpack"):
        layer(np.ones((2, 8), np.float32))
    for eps in (0.0, -1e-5):
        with pytest.raises(ValueError, match="eps must be a positive float"):
            solution.LayerNorm(8, eps=eps)
