"""Step 03 beyond the shared promises of tests/test_steps.py: options, notes, the GPU path, bad input.

MAX is imported here (in this process, for the solution's own error messages) and in the checker's
children; with a warm kernel cache a run takes seconds, a cold one minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.check.cli import parse_check_arguments
from tests.check.engine import REPO_ROOT, load_checklist
from tests.check.step_03 import judging
from tests.zoo_helpers import check_file, cli_json

pytestmark = pytest.mark.max

STEP = "03"
WORKED_EXAMPLE_LINES = [
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
BEYOND = [
    "2-D (batch, dim) and 3-D (batch, seq, dim)",
    "layer_norm_from_scratch",
    "compile_layer_norm honours batch_dims and dtype",
    "compile_layer_norm: one graph",
]


def test_worked_example_lines_come_first_in_its_order():
    names = [check.name for check in load_checklist(STEP).checks]
    for name, expected in zip(names, WORKED_EXAMPLE_LINES, strict=False):
        assert expected in name
    assert len(names) == len(WORKED_EXAMPLE_LINES) + len(BEYOND)
    for name, expected in zip(names[len(WORKED_EXAMPLE_LINES) :], BEYOND, strict=True):
        assert expected in name


def test_the_report_says_what_compiles_and_where_it_ran():
    _, report = cli_json(STEP, "--solution")
    assert "first run takes" in report["notes"][0]  # before the checks: the learner may wait a minute
    assert report["notes"][-1] == "Ran on cpu:0."


# -- the options and notes of the checklist --------------------------------------------------
def parse(*args):
    return parse_check_arguments([STEP, *args])[1]


def test_device_option():
    assert parse().device == "auto"
    assert parse("--device", "cpu").device == "cpu"
    assert parse("--solution", "--device", "gpu").device == "gpu"
    with pytest.raises(SystemExit):
        parse("--device", "tpu")


def test_version_note_when_max_differs(monkeypatch):
    monkeypatch.setattr(judging, "installed_max_version", lambda: "26.1.0")
    notes = load_checklist(STEP).notes(parse())
    assert "MAX 26.1.0 is installed" in notes[0] and judging.EXPECTED_MAX in notes[0]
    monkeypatch.setattr(judging, "installed_max_version", lambda: None)
    assert "not installed" in load_checklist(STEP).notes(parse())[0]
    monkeypatch.setattr(judging, "installed_max_version", lambda: judging.EXPECTED_MAX)
    notes = load_checklist(STEP).notes(parse())
    assert len(notes) == 1 and "first run" in notes[0]


def test_expected_version_is_the_pin():
    assert f'"max=={judging.EXPECTED_MAX}"' in (REPO_ROOT / "pyproject.toml").read_text()


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


def test_parameters_that_are_not_max_tensors_are_named_as_such(solution):
    """NumPy parameters have a float32 dtype too, NumPy's: the input check must not report "float32 but float32"."""
    from max.experimental.tensor import Tensor

    x = Tensor.from_dlpack(np.ones((2, 8), np.float32))
    with pytest.raises(TypeError, match=r"parameters must be MAX Tensors") as raised:
        solution._check_input(x, 8, np.ones(8, np.float32).dtype)
    assert "but the input is" not in str(raised.value)


# -- bfloat16: MAX's default dtype on a GPU, checked here on the CPU with --dtype bfloat16 ------------------
def test_dtype_option():
    assert parse().dtype == "auto"
    assert parse("--dtype", "bfloat16").dtype == "bfloat16"
    with pytest.raises(SystemExit):
        parse("--dtype", "float16")


def test_a_float32_input_to_a_bfloat16_module_is_a_clear_type_error(solution):
    from max.driver import CPU
    from max.dtype import DType
    from max.experimental.tensor import Tensor, default_device, default_dtype

    with default_device(CPU()), default_dtype(DType.bfloat16):  # what a GPU gives a module by default
        layer = solution.LayerNorm(8)
    assert layer.weight.dtype == DType.bfloat16
    with pytest.raises(TypeError, match=r"parameters are bfloat16 but the input is float32; cast it with x\.cast"):
        layer(Tensor.from_dlpack(np.ones((2, 8), np.float32)))


def test_the_solution_passes_in_bfloat16():
    """The whole checklist in bfloat16, as on a GPU: inputs bfloat16 holds, bfloat16 tolerances, bfloat16 hints."""
    # MAX compiles bfloat16 CPU kernels no learner's run needs: minutes, cold, on a small machine
    solution = REPO_ROOT / "solutions" / "solution_03.py"
    report = check_file(STEP, solution, "--device", "cpu", "--dtype", "bfloat16", "--timeout-scale", "4")
    assert report.passed, [(r.name, r.message) for r in report.results if not r.passed]
    assert report.notes[-1] == "Ran on cpu:0, in bfloat16."
    weight = next(r for r in report.results if r.name.startswith("LayerNorm.weight is initialized"))
    assert weight.message == "shape [16], bfloat16; follows MAX's default dtype and device"


def test_float32_parameters_in_a_bfloat16_run_are_named(tmp_path):
    source = (REPO_ROOT / "solutions" / "solution_03.py").read_text()
    hard_coded = source.replace("Tensor.ones([dim])", "Tensor.ones([dim], dtype=DType.float32)")
    assert hard_coded != source
    path = tmp_path / "float32_weights.py"
    path.write_text(hard_coded)
    report = check_file(STEP, path, "--device", "cpu", "--dtype", "bfloat16", "--only", "weight is initialized")
    [failed] = [r for r in report.results if r.status == "failed"]
    assert "is float32, expected bfloat16 (MAX's default dtype on a GPU" in failed.message


EAGER_WITHOUT_COMPILING = """
import sys
import numpy as np
sys.path.insert(0, "solutions")
from tests.check.step_03 import probes
probes.ready_for_layer_norm(None, "cpu")  # what every step-03 probe does first (no graph of theirs here)
from max._interpreter_ops import gc_compile

def refuse(family, key, device, build):
    raise SystemExit(f"compiled {key} on its own")

gc_compile.compile_single_target = refuse  # from here on, a kernel not compiled in the batch stops the run
import solution_03 as solution
from max.experimental.tensor import Tensor
x = Tensor.from_dlpack(np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32))
layer = solution.LayerNorm(16)
for out in (layer(x), solution.layer_norm_from_scratch(x, layer.weight, layer.bias, 1e-5)):
    out.to_numpy()
print("no kernel compiled on its own")
"""


def test_the_eager_kernels_of_a_layer_norm_are_compiled_in_one_batch():
    """One batch instead of a compile per op kind is what makes a cold `make s03` take ~30 s, not ~2 min."""
    result = subprocess.run(
        [sys.executable, "-c", EAGER_WITHOUT_COMPILING], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and "no kernel compiled on its own" in result.stdout, result.stdout + result.stderr


BACKGROUND_COMPILE = """
import json, os, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "solutions")
from tests.check.step_03 import probes
import solution_03 as solution
probes.ready_for_layer_norm(solution, "cpu")  # what the first step-03 probe of a run does
exit_codes = [process.wait() for process in probes._BACKGROUND]
cache = Path(os.environ["MODULAR_DERIVED_PATH"])
def cached():
    return {str(path) for path in cache.rglob("*") if path.is_file()}
before = cached()
probes.compiled(solution, "cpu", [np.ones((2, probes.DIM), np.float32)])  # the compiled-graph check's probe
print(json.dumps({"exit_codes": exit_codes, "compiled_by_the_check": sorted(cached() - before)}))
"""


def test_a_cold_run_compiles_the_learners_graph_beside_the_eager_kernels(tmp_path):
    """Cold, a second process compiles the learner's graph into MAX's cache while the eager kernels compile (two
    compiles of over ten seconds each, side by side on two cores), and the compiled-graph check then compiles
    nothing: a graph that differed would be compiled again, into new files. Warm, nothing is started."""
    env = dict(os.environ, MODULAR_DERIVED_PATH=str(tmp_path))  # an empty MAX cache of its own

    def run():
        result = subprocess.run(
            [sys.executable, "-c", BACKGROUND_COMPILE],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    cold, warm = run(), run()
    assert cold["exit_codes"] == [0]  # 0: it compiled, and stopped where the weights would be made
    assert cold["compiled_by_the_check"] == []
    assert warm["exit_codes"] == []


def test_a_stuck_background_compile_is_stopped(monkeypatch):
    from tests.check.step_03 import probes

    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(probes, "BACKGROUND_CPU_SECONDS", 0.2)
    monkeypatch.setattr(probes, "_BACKGROUND", [stuck])
    probes._wait_for_background_compile()
    assert stuck.poll() is not None and probes._BACKGROUND == []
