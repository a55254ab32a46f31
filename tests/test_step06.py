"""Step 06 beyond the shared promises of tests/test_steps.py: compiler errors a learner can read, the kernel's
memory mistakes named whatever order its threads ran in, hangs reported in seconds, the harness reused, speed."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.check.engine import REPO_ROOT, Fail
from tests.check.kit import layernorm, random_case
from tests.check.step_06 import kernel_harness
from tests.check.step_06.judging import compiler_message, judge_call, kernel_output
from tests.zoo_helpers import ZOO, assemble, cli_json

SKELETON = REPO_ROOT / "steps" / "step_06"
CANARY = kernel_harness.CANARY


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


# -- the harness's verdicts, on outputs built here: what the kernel left in guarded buffers -----------------
def call(y, *, after=None, before=None, outcome="returned", **fields) -> kernel_harness.Call:
    guard = np.full(np.shape(y)[1] + kernel_harness.GUARD, CANARY, np.float32)  # a row and more, as the harness has
    return kernel_harness.Call(
        outcome=outcome,
        y=np.asarray(y, np.float32),
        before=guard if before is None else before,
        after=guard if after is None else after,
        inputs_changed=fields.pop("inputs_changed", []),
        simd_width=16,
        **fields,
    )


def verdict(result: kernel_harness.Call, x, gamma, beta, eps=1e-5) -> str:
    with pytest.raises(Fail) as failure:
        judge_call(result, x, gamma, beta, eps)
    return str(failure.value)


def stored_in_order(rows_values, starts, size, order) -> np.ndarray:
    """A flat output written row by row in `order` (the threads' order): overlapping rows, the last one wins."""
    flat = np.full(size, CANARY, np.float32)
    for r in order:
        flat[starts[r] : starts[r] + rows_values.shape[1]] = rows_values[r]
    return flat


@pytest.fixture
def rows():
    return random_case(9, (5, 771), dtype="float32")


def test_a_right_output_passes_the_harness_judge(rows):
    x, gamma, beta = rows
    judge_call(call(layernorm(x, gamma, beta, 1e-5)), x, gamma, beta, 1e-5)


def test_a_row_stored_at_offset_row_is_named_whatever_order_the_threads_ran_in(rows):
    x, gamma, beta = rows
    n, d = x.shape
    right = layernorm(x, gamma, beta, 1e-5)
    messages = {
        verdict(call(stored_in_order(right, list(range(n)), n * d, order).reshape(n, d)), x, gamma, beta)
        for order in (range(n), reversed(range(n)), [2, 0, 4, 1, 3])
    }
    assert len(messages) == 1, messages
    assert "it is stored at element `row` (row, not row * width)" in messages.pop()


def test_a_row_read_from_offset_row_is_named(rows):
    x, gamma, beta = rows
    n, d = x.shape
    read_at_row = np.stack([x.ravel()[r : r + d] for r in range(n)])
    message = verdict(call(layernorm(read_at_row, gamma, beta, 1e-5)), x, gamma, beta)
    assert "read from x at element `row` (row, not row * width)" in message


def test_a_write_past_the_end_of_the_rows_is_named_by_the_guard_after_y(rows):
    x, gamma, beta = rows
    after = np.full(x.shape[1] + kernel_harness.GUARD, CANARY, np.float32)
    after[0] = 0.5  # the last row's column D
    message = verdict(call(layernorm(x, gamma, beta, 1e-5), after=after), x, gamma, beta)
    assert "writes past the end of its rows" in message and "column 771 of a 771-wide row" in message


def test_rows_stored_one_row_down_are_named_from_the_guard_after_y(rows):
    x, gamma, beta = rows
    n, d = x.shape
    region = np.full((n + 2) * d, CANARY, np.float32)  # the guard before y, y, and the guard after it
    region[2 * d :] = layernorm(x, gamma, beta, 1e-5).ravel()  # row r at (r + 1) * width
    message = verdict(call(region[d : (n + 1) * d].reshape(n, d), after=region[(n + 1) * d :]), x, gamma, beta)
    assert "stored at the next row's start, (row + 1) * width" in message


def test_a_crash_after_every_row_is_right_names_the_row_count(rows):
    x, gamma, beta = rows
    crashed = call(layernorm(x, gamma, beta, 1e-5), outcome="crashed", signal_name="SIGSEGV")
    assert "went on past the last row" in verdict(crashed, x, gamma, beta)


def test_outputs_that_differ_between_calls_are_named_a_race(rows):
    x, gamma, beta = rows
    racy = call(layernorm(x, gamma, beta, 1e-5), calls=20, different_calls=3, first_different_row=2)
    assert "other outputs in 3 of 20 calls (first in row 2)" in verdict(racy, x, gamma, beta)


def test_tail_columns_never_written_are_named_by_the_canary(rows):
    x, gamma, beta = rows
    y = layernorm(x, gamma, beta, 1e-5).astype(np.float32)
    y[:, 768:] = CANARY
    assert "Columns 768..770 of every row are never written" in verdict(call(y), x, gamma, beta)


def test_a_read_past_the_end_of_x_is_named_by_the_nan_there(rows):
    x, gamma, beta = rows
    y = layernorm(x, gamma, beta, 1e-5).astype(np.float32)
    y[-1] = np.nan  # the last row summed the NaN after x
    assert "The last row came out NaN: it read past the end of x" in verdict(call(y), x, gamma, beta)


def test_gamma_read_at_the_row_offset_is_named(rows):
    x, gamma, beta = rows
    y = layernorm(x, gamma, beta, 1e-5).astype(np.float32)
    y[1:] = np.nan  # rows 1.. read gamma past its end
    assert "Row 0 is right and later rows came out NaN" in verdict(call(y), x, gamma, beta)


def test_a_kernel_over_its_budget_is_told_where_it_stalled(rows):
    x, gamma, beta = rows
    nothing = call(np.full(x.shape, CANARY), outcome="stalled", budget=2.0, reference_seconds=1e-5)
    message = verdict(nothing, x, gamma, beta)
    assert "did not return within 2.0 s" in message and "0.01 ms" in message
    assert "statistics" in message and "raise the limits" not in message and "timeout-scale" not in message
    half = np.full(x.shape, CANARY, np.float32)
    half[:2] = layernorm(x[:2], gamma, beta, 1e-5)
    message = verdict(call(half, outcome="stalled", budget=2.0, reference_seconds=1e-5), x, gamma, beta)
    assert "2 of 5 rows whole" in message and "output pass" in message


def test_a_variance_divided_by_the_wrong_count_is_named():
    x, gamma, beta = random_case(2, (37, 771), dtype="float32")
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    var = ((x64 - mean) ** 2).sum(axis=1, keepdims=True) / 768  # a count of whole vectors only
    y = (x64 - mean) / np.sqrt(var + 1e-5) * gamma + beta
    with pytest.raises(Fail, match="divided by 768, not by D = 771"):
        kernel_output(y.astype(np.float32), x, gamma, beta, 1e-5)


# -- the harness built and run: hangs in seconds, verdicts that do not change between runs ------------------
def quick_report(case: str) -> dict:
    folder = assemble(ZOO / "step_06" / case).parent
    command = [sys.executable, "-m", "tests.check", "06", "--file", str(folder), "--device", "cpu", "--quick"]
    result = subprocess.run([*command, "--json"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    return json.loads(result.stdout)


@pytest.mark.mojo
def test_a_kernel_that_never_returns_is_reported_within_seconds_of_its_compile():
    report = quick_report("bad_hang_counter")
    checks = {check["name"]: check for check in report["checks"]}
    [first] = [check for check in report["checks"] if check["status"] == "failed"][:1]
    assert first["name"].startswith("memory") and "did not return within" in first["message"], first
    assert first["seconds"] < 30, first  # its budget: a couple of seconds, not the 300 s of a MAX compile
    assert all(c["message"].startswith("Not run: your kernel never returns") for c in report["checks"][3:9]), checks


@pytest.mark.mojo
def test_an_overrun_into_the_next_row_gets_the_same_verdict_and_hints_in_five_runs():
    reports = [
        # a passed check's note may differ ("compiled in 8.8 s", then "reused"): its verdict and hints may not
        [
            (c["name"], c["status"], c["message"] if c["status"] == "failed" else "")
            for c in quick_report("bad_overrun_next_row")["checks"]
        ]
        for _ in range(5)
    ]
    assert all(report == reports[0] for report in reports), reports
    failed = [message for _, status, message in reports[0] if status == "failed"]
    assert failed and "writes past the end of its rows" in failed[0]


@pytest.mark.mojo
def test_the_harness_is_built_once_per_content_and_reused(tmp_path):
    package = tmp_path / "kernels"
    package.mkdir()
    for source in (REPO_ROOT / "solutions" / "solution_06").glob("*.mojo"):
        (package / source.name).write_bytes(source.read_bytes())
    builder = kernel_harness.Builder(package)
    first = builder.result()
    again = kernel_harness.Builder(package).result()
    assert first.binary is not None and again.cached and again.binary == first.binary
    with (package / "layer_norm.mojo").open("a") as kernel:
        kernel.write("\n# an edit\n")
    edited = kernel_harness.Builder(package)
    assert edited.key != builder.key and edited.done is None  # a new build, not the old one
    edited.stop()


@pytest.mark.mojo
def test_the_solution_gets_a_speed_note_not_a_check():
    _, report = cli_json("06", "--solution")
    [line] = [note for note in report["notes"] if note.startswith("Speed at 4096 x 768:")]
    assert re.search(r"yours [\d.]+ ms, the built-in [\d.]+ ms \(median of 25, in turns\): [\d.]+× its time", line)
    assert not any("speed" in check["name"] for check in report["checks"])
