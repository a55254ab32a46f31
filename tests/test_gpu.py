"""The GPU paths, as far as a machine without a GPU can check them: step 06's kernel, and step 03's dtype.

Everywhere: the GPU checks are skipped with their reason (never passed) where they cannot run, their
judging names the GPU mistakes, and the smoke runner's CPU side (reference, verdicts, the no-GPU path,
the page it writes) is right. With Mojo (the `mojo` tier): the solution's GPU kernel compiles for an
NVIDIA (sm_90) and an AMD (gfx942) GPU, alone (`mojo build --emit asm`, the PTX the smoke run loads)
and inside the custom op (a MAX graph compiled for a virtual GPU), and a kernel that breaks the GPU
path fails that compile.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tests.check.step_06.checklist as step_06
from bench import gpu_ptx, gpu_smoke
from tests.check.blocks import blocks
from tests.check.cli import parse_check_arguments
from tests.check.engine import REPO_ROOT, Checklist, Fail, run_checklist, skip_reason
from tests.check.kit import layernorm, random_case, representable, tolerance
from tests.check.step_06 import judging
from tests.zoo_helpers import expectation, zoo_cases

SOLUTION_PACKAGE = REPO_ROOT / "solutions" / "solution_06"
GPU_CHECKS = [check for check in step_06.checklist.checks if check.skip_if is judging.gpu_skip]


def options(*args: str):
    return parse_check_arguments(["06", *args])[1]


# -- the engine: a check that cannot run here is skipped with its reason, never passed ---------------------
def test_a_check_skipped_by_the_machine_is_reported_skipped_with_its_reason(tmp_path):
    learner_file = tmp_path / "anything.py"
    learner_file.write_text("VALUE = 1\n")
    checklist = Checklist(step="99", title="skip_if")
    checklist.check("runs here")(lambda learner: "ran")
    checklist.check("needs a machine we lack", skip_if=lambda options: "no such machine here")(
        lambda learner: pytest.fail("a check skipped by its skip_if must not run")
    )
    checklist.check("runs here too", skip_if=lambda options: None)(lambda learner: "ran too")
    report = run_checklist(checklist, learner_file, None, strict=True)
    statuses = {result.name: (result.status, result.message) for result in report.results}
    assert statuses["needs a machine we lack"] == ("skipped", "no such machine here")
    assert statuses["runs here"] == ("passed", "ran")
    assert statuses["runs here too"] == ("passed", "ran too")
    assert report.passed and report.count("skipped") == 1  # skipped: not a failure, and not counted as passed
    assert report.as_json()["checks"][2]["status"] == "skipped"


# -- step 06: --device, the note, the skip reasons ---------------------------------------------------
def test_device_option():
    assert options().device == "auto"
    assert options("--device", "cpu").device == "cpu"
    assert options("--solution", "--device", "gpu").device == "gpu"
    with pytest.raises(SystemExit):
        options("--device", "tpu")


def test_there_are_gpu_checks_and_they_come_last():
    names = [check.name for check in step_06.checklist.checks]
    assert len(GPU_CHECKS) == 3 and all(check.name.startswith("GPU: ") for check in GPU_CHECKS)
    assert names[-len(GPU_CHECKS) :] == [check.name for check in GPU_CHECKS]  # a GPU TODO blocks no CPU check


@pytest.mark.parametrize(
    "device, gpu, skipped, note",
    [
        ("auto", None, "no GPU here: MAX sees no accelerator", "Device: the CPU. The GPU checks are skipped"),
        ("cpu", "gpu:0, NVIDIA H100, sm_90", "--device cpu", "Device: the CPU. The GPU checks are skipped"),
        ("auto", "gpu:0, NVIDIA H100, sm_90", None, "the GPU checks on gpu:0, NVIDIA H100, sm_90"),
        ("gpu", "gpu:0, NVIDIA H100, sm_90", None, "the GPU checks on gpu:0, NVIDIA H100, sm_90"),
        ("gpu", None, None, "--device gpu was asked for, but MAX sees no GPU here: the GPU checks fail"),
    ],
)
def test_skip_reasons_and_the_first_note_say_which_device(monkeypatch, device, gpu, skipped, note):
    monkeypatch.setattr(judging, "visible_gpu", lambda: gpu)
    chosen = options("--device", device)
    for check in GPU_CHECKS:
        reason = skip_reason(check, chosen)
        assert (reason is None) if skipped is None else (skipped in reason), reason
    cpu_checks = [check for check in step_06.checklist.checks if check not in GPU_CHECKS]
    assert all(skip_reason(check, chosen) is None for check in cpu_checks)  # the CPU checks always run
    assert note in step_06.notes(chosen)[0]


def test_visible_gpu_asks_max_in_a_child_process():
    judging.visible_gpu.cache_clear()
    try:
        found = judging.visible_gpu()
    finally:
        judging.visible_gpu.cache_clear()
    assert found is None or re.match(r"gpu:\d+, ", found), found


def test_every_gpu_check_is_failed_by_a_gpu_zoo_case():
    """On a machine with a GPU, tests/test_steps.py holds each GPU check to a wrong file that fails it."""
    wanted = {}
    for _, case in (param.values for param in zoo_cases("06")):
        expected = expectation(case)
        if expected and expected[0].startswith("GPU:"):
            wanted.setdefault(expected[0], []).append(case.name)
            files = list(case.iterdir())
            assert any(re.search(r"^#?\s*OPTIONS:.*--device auto", f.read_text(), re.M) for f in files), case
    for check in GPU_CHECKS:
        assert any(part.lower() in check.name.lower() for part in wanted), f"no GPU zoo case fails {check.name!r}"


def test_the_skeletons_gpu_todo_is_a_todo_the_checker_recognises():
    skeleton = (REPO_ROOT / "steps" / "step_06" / "layer_norm.mojo").read_text()
    todo = blocks(skeleton)
    assert {"rows", "gpu_row", "gpu_launch"} <= set(todo)
    assert any(re.search(r'raise Error\("TODO: [^"]*GPU', line) for line in todo["gpu_launch"])
    assert any(line.strip() == "pass" for line in todo["gpu_row"])


# -- step 06: judging GPU outputs ---------------------------------------------------------------------
def one_sweep(x, gamma, beta, eps, head):
    """What a kernel computes whose threads stop after one sweep of the block (`head` columns)."""
    x64 = np.asarray(x, np.float64)
    d = x.shape[1]
    mean = x64[:, :head].sum(axis=1, keepdims=True) / d
    var = ((x64[:, :head] - mean) ** 2).sum(axis=1, keepdims=True) / d
    y = (x64 - mean) / np.sqrt(var + 1e-5) * gamma + beta
    y[:, head:] = 0.0  # never written
    return y


@pytest.mark.parametrize("d, head", [(771, judging.GPU_BLOCK), (4099, judging.GPU_BLOCK), (8192, 1024)])
def test_a_kernel_whose_threads_take_one_sweep_is_named(d, head):
    x, gamma, beta = random_case(1, (3, d), dtype="float32")
    with pytest.raises(Fail, match=f"only the first {head} of {d} columns, one sweep of the block"):
        judging.diagnose_gpu(one_sweep(x, gamma, beta, 1e-5, head), x, gamma, beta, 1e-5)


def test_columns_past_one_sweep_unwritten_are_named():
    x, gamma, beta = random_case(2, (3, 771), dtype="float32")
    y = layernorm(x, gamma, beta, 1e-5)
    y[:, 256:] = 0.0
    with pytest.raises(Fail, match="Columns 256 to 770 are wrong, the first 256 right"):
        judging.diagnose_gpu(y, x, gamma, beta, 1e-5)


def test_rows_past_the_grid_are_named():
    n = judging.GPU_MAX_GRID + 5
    x, gamma, beta = random_case(3, (n, 3), dtype="float32")
    y = layernorm(x, gamma, beta, 1e-5)
    y[judging.GPU_MAX_GRID :] = 0.0
    with pytest.raises(Fail, match=f"Rows {judging.GPU_MAX_GRID} and beyond are wrong.*row \\+= grid_dim.x"):
        judging.diagnose_gpu(y, x, gamma, beta, 1e-5)


def test_gpu_shapes_straddle_the_launch():
    widths = {d for _, d in step_06.GPU_SHAPES}
    assert 1 in widths and any(d % judging.GPU_VEC for d in widths) and any(d % judging.GPU_VEC == 0 for d in widths)
    assert max(widths) > judging.GPU_BLOCK * judging.GPU_VEC  # several sweeps of a vector block
    assert any(n == 1 for n, _ in step_06.GPU_SHAPES) and any(n % 2 for n, _ in step_06.GPU_SHAPES)
    assert max(n for n, _ in step_06.GPU_SHAPES) > judging.GPU_MAX_GRID  # a block takes several rows
    source = (SOLUTION_PACKAGE / "layer_norm.mojo").read_text()
    declared = gpu_ptx.launch_constants(source)
    assert (declared["block"], declared["max_grid"]) == (judging.GPU_BLOCK, judging.GPU_MAX_GRID)
    assert re.search(rf"^comptime GPU_VEC = {judging.GPU_VEC}\b", source, re.M)


# -- the smoke runner's CPU side ------------------------------------------------------------------
def test_smoke_shapes_are_the_bench_shapes_and_a_wide_row():
    from bench import run

    assert gpu_smoke.SHAPES["full"] == [*run.SHAPES["full"], (4096, 8192)]


def test_smoke_reference_is_the_oracle():
    x, gamma, beta = gpu_smoke.inputs((7, 771), seed=3)
    assert x.dtype == gamma.dtype == beta.dtype == np.float32
    np.testing.assert_allclose(gpu_smoke.reference(x, gamma, beta), layernorm(x, gamma, beta, 1e-5), atol=1e-12)


def test_smoke_verdicts():
    x, gamma, beta = gpu_smoke.inputs((5, 300), seed=4)
    right = gpu_smoke.reference(x, gamma, beta).astype(np.float32)
    assert gpu_smoke.judge(right, x, gamma, beta)["passed"]
    unbiased = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + 1e-5) * gamma + beta
    wrong = gpu_smoke.judge(unbiased, x, gamma, beta)
    assert not wrong["passed"] and "max error" in wrong["why"]
    nan = right.copy()
    nan[2, 7] = np.nan
    assert not gpu_smoke.judge(nan, x, gamma, beta)["passed"]
    assert not gpu_smoke.judge(right[:, :-1], x, gamma, beta)["passed"]
    assert gpu_smoke.gbps((1000, 1000), 1e-3) == pytest.approx(8.0)


def test_without_a_gpu_the_smoke_run_measures_nothing_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_smoke, "unavailable", lambda: "CuPy finds no CUDA GPU")
    assert gpu_smoke.main(["--out", str(tmp_path)]) == 0
    assert "GPU smoke run skipped: CuPy finds no CUDA GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_the_real_machine_says_why_it_cannot_run_the_smoke_test():
    why = gpu_smoke.unavailable()
    try:
        import cupy  # noqa: F401

        has_cupy = True
    except ImportError:
        has_cupy = False
    assert why is None or ("CuPy" in why), why
    if not has_cupy:
        assert why.startswith("CuPy is not installed")


def test_the_page_says_not_run_until_a_gpu_has_run_it():
    """bench/numbers-gpu.md is what the results say: "not run on a GPU yet" while there are none."""
    results = json.loads(gpu_smoke.RESULTS.read_text()) if gpu_smoke.RESULTS.exists() else None
    committed = gpu_smoke.NUMBERS.read_text(encoding="utf-8")
    assert committed == gpu_smoke.render(results)
    if results is None:
        assert "Not run on a GPU yet" in committed and not re.search(r"\d+\.\d+ ms|GB/s \|", committed)
    assert "{{#include ../../bench/numbers-gpu.md}}" in (REPO_ROOT / "docs" / "src" / "performance.md").read_text()


def test_the_page_renders_measured_results(tmp_path):
    made_up = {  # a test fixture: the shape of results-gpu.json, with no claim about any device
        "device": "Test Device",
        "arch": "sm_90",
        "date": "2000-01-01T00:00:00+00:00",
        "cupy": "0",
        "torch": None,
        "repeats": 3,
        "kernel": {"entry": "k", "source": "solutions/solution_06/layer_norm.mojo", "block": 256, "stale": True},
        "rows": [
            {
                "shape": [2, 4],
                "passed": True,
                "max_error": 1e-7,
                "ms": {"ours": 1.0, "copy": 0.5},
                "gbps": {"ours": 1.0, "copy": 2.0},
                "of_copy": 0.5,
                "x_torch": None,
            },
            {
                "shape": [2, 5],
                "passed": False,
                "max_error": 3.0,
                "ms": {"ours": 1.0, "copy": 0.5},
                "gbps": {"ours": 1.0, "copy": 2.0},
                "of_copy": 0.5,
                "x_torch": None,
            },
        ],
    }
    (tmp_path / "results-gpu.json").write_text(json.dumps(made_up))
    assert gpu_smoke.main(["--render-only", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "numbers-gpu.md").read_text()
    assert "**Test Device** (sm_90)" in page and "Not run on a GPU yet" not in page
    assert "| 2×4 | ✅ |" in page and "❌ wrong: its time means nothing" in page and "older layer_norm.mojo" in page


def test_entry_names_are_read_from_ptx_and_amdgcn():
    ptx = ".version 8.5\n.target sm_90a\n.visible .entry my_kernel_123(\n\t.param .u64 a\n)\n{\n}\n"
    amdgcn = "\t.globl\tmy_kernel_123\n\t.amdhsa_kernel my_kernel_123\n\t.end_amdhsa_kernel\n"
    assert gpu_ptx.entry_name(ptx) == gpu_ptx.entry_name(amdgcn) == "my_kernel_123"
    with pytest.raises(ValueError, match="expected one kernel"):
        gpu_ptx.entry_name(ptx + ptx.replace("123", "456"))


# -- the mojo tier: the GPU path compiles for an NVIDIA and an AMD GPU, here, without one ------------
@pytest.mark.mojo
@pytest.mark.parametrize(
    "arch, expected",
    [
        # vector loads through the read-only cache, warp shuffles, block barriers
        (
            "sm_90",
            [r"^\.target sm_90", r"ld\.global\.nc\.v4\.b32", r"shfl\.sync\.bfly\.b32", r"bar\.sync", r"\.shared"],
        ),
        ("gfx942", [r"gfx942", r"global_load_dwordx4", r"s_barrier", r"\.wavefront_size:\s+64", r"ds_bpermute"]),
    ],
)
def test_the_gpu_kernel_compiles_to_assembly(tmp_path, arch, expected):
    manifest = json.loads(gpu_ptx.build(arch, tmp_path).read_text())
    assembly = (tmp_path / manifest["file"]).read_text()
    assert manifest["entry"] in assembly and manifest["block"] == judging.GPU_BLOCK
    for pattern in expected:
        assert re.search(pattern, assembly, re.M), f"{arch}: {pattern!r} not in the assembly"


COMPILE_FOR_A_VIRTUAL_GPU = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path

    from max import driver

    api, arch, package = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    driver.set_virtual_device_api(api)  # compile-only devices: MAX compiles for them, runs nothing
    driver.set_virtual_device_target_arch(arch)
    driver.set_virtual_device_count(1)
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType, ops

    gpu = DeviceRef.GPU()
    types = [TensorType(DType.float32, ["rows", 771], gpu), *[TensorType(DType.float32, [771], gpu)] * 2]
    with Graph("layer_norm_on_a_gpu", input_types=types, custom_extensions=[package]) as graph:
        x, gamma, beta = graph.inputs
        out = TensorType(DType.float32, x.tensor.shape, gpu)
        y = ops.custom("layer_norm_fast", gpu, [x, gamma, beta], [out], parameters={"epsilon": 1e-5})
        graph.output(y[0])
    InferenceSession(devices=[driver.Accelerator()]).load(graph)
    print("compiled for", driver.Accelerator().api, driver.Accelerator().architecture_name, flush=True)
    # MAX 26.7 can abort while the interpreter shuts down after a cached load ("terminate called without an
    # active exception"): the compile is done and reported, so leave without that teardown.
    os._exit(0)
    """
)


def compile_custom_op_for(api: str, arch: str, package: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", COMPILE_FOR_A_VIRTUAL_GPU, api, arch, str(package)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)


@pytest.mark.max
@pytest.mark.mojo
@pytest.mark.parametrize("api, arch", [("cuda", "sm_90"), ("hip", "gfx942")])
def test_the_custom_op_compiles_its_gpu_path_without_a_gpu(api, arch):
    """The graph MAX would run on a GPU: execute's GPU branch, its launch and the kernel, compiled for `arch`."""
    result = compile_custom_op_for(api, arch, SOLUTION_PACKAGE)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"compiled for {api} {arch}" in result.stdout


@pytest.mark.max
@pytest.mark.mojo
def test_a_broken_gpu_path_fails_that_compile(tmp_path):
    """The compile above is not vacuous: an `Int` where the launch needs an `Int64` fails it (CPU builds pass)."""
    package = tmp_path / "solution_06"
    shutil.copytree(SOLUTION_PACKAGE, package)
    kernel = package / "layer_norm.mojo"
    source = kernel.read_text()
    assert source.count("Int64(rows),") == 1
    kernel.write_text(source.replace("Int64(rows),", "rows,"))
    result = compile_custom_op_for("cuda", "sm_90", package)
    assert result.returncode != 0 and "Failed to compile" in result.stderr, result.stdout + result.stderr[-3000:]


# -- step 03 on a GPU: bfloat16, MAX's default dtype there ------------------------------------------------
def test_inputs_are_made_of_values_bfloat16_holds():
    x = np.array([1.0, 1.00390625, 1.01171875, 50.1, -3.14159, 1e-3, 0.0], np.float32)
    rounded = representable(x, "bfloat16")
    assert rounded.dtype == np.float32
    np.testing.assert_array_equal(rounded.view(np.uint32) & 0xFFFF, 0)  # 8 significant bits, exactly
    # nearest, ties to even (1 + 2^-8 lies halfway between 1 and 1 + 2^-7)
    np.testing.assert_array_equal(rounded[:3], [1.0, 1.0, 1.015625])
    assert np.all(np.abs(rounded - x) <= np.abs(x) * 2.0**-8)  # half a unit in the last place
    np.testing.assert_array_equal(representable(x, "float32"), x)  # float32 runs see the very same inputs


def test_bfloat16_tolerance_is_a_few_units_in_the_last_place():
    assert tolerance("bfloat16", 16) == pytest.approx(1.6e-2) and tolerance("float32", 16) == pytest.approx(1e-5)
    assert 2.0**-7 < tolerance("bfloat16", 16) < 2.0**-4  # above one bfloat16 ulp of 1 (2^-7), below eight
