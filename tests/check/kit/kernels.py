"""Judging a LayerNorm kernel (step 06): where its output is wrong and why, in hints a learner can act on.

Judge side: the kernel's catalogued mistakes, the positional patterns of a wrong output (rows, the SIMD tail, a
GPU block's sweep, rows past the grid), the Mojo compiler's messages, and `run_kernel`, which runs a kernel probe
(`max_side.eager`, ...) in the learner's process and turns a kernel's failures into hints.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.check.engine import REPO_ROOT, Fail
from tests.check.kit import max_side
from tests.check.kit.judging import Mistake, expect_array, expect_close, judge_large_mean, layernorm, random_case
from tests.check.kit.mistakes import forward_mistakes
from tests.check.sandbox import LearnerError
from tests.check.wire import TensorRecord

KERNEL_FILE = "layer_norm.mojo"
ATOL = 1e-4  # float32 kernel against the float64 oracle; the classic mistakes are far larger
SIMD_WIDTHS = (4, 8, 16, 32, 64)  # the vector widths a tail bug can be tied to
NO_PACKAGE = "the Mojo package does not compile (see above)."
TODO_KERNEL = "the fast kernel is still a TODO (see above)."
TODO_GPU = "the GPU path of the fast kernel is still a TODO (see above)."
# The solution's launch (layer_norm.mojo): one block of GPU_BLOCK threads per row, GPU_VEC-float loads, and
# at most GPU_MAX_GRID blocks; step 06's GPU shapes straddle each (D = 1, D beyond a block's sweep, more rows
# than blocks), and mistakes tied to them are named.
GPU_BLOCK, GPU_VEC, GPU_MAX_GRID = 256, 4, 65536
FIXES = {  # the catalogued mistakes of a kernel, and how to fix each in Mojo
    "eps-ignored": "use the struct's parameter, `Self.epsilon`, in rstd = 1 / sqrt(var + Self.epsilon)",
    "no-eps": "rstd = 1 / sqrt(var + Self.epsilon)",
    "unbiased": "divide the sum of squares by width",
    "eps-outside": "rstd = 1 / sqrt(var + Self.epsilon)",
    "swapped": "",
    "no-affine": "y = xhat * gamma + beta",
    "not-centred": "xhat = (x - mean) * rstd",
    "times-std": "rstd = 1 / sqrt(var + Self.epsilon)",
    "rows-shifted-down": "row r must read and write at offset r * width (check the unsafe_offset lines)",
    "rows-shifted-up": "row r must read and write at offset r * width (check the unsafe_offset lines)",
    "row-zero": "the row index is not used where x and y are read and written (x_ptr.unsafe_offset(row * width))",
}


@functools.cache
def visible_gpu() -> str | None:
    """The GPU MAX sees ("gpu:0, NVIDIA H100 80GB HBM3, sm_90"), or None.

    Asked in a child process: the judge never imports MAX, and a missing or broken driver stays there.
    """
    code = (
        "from max.driver import Accelerator, accelerator_count\n"
        "if accelerator_count():\n"
        "    d = Accelerator()\n"
        "    print(f'{d.label}:{d.id}, {d.model_name}, {d.architecture_name}')\n"
    )
    try:
        found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = found.stdout.strip().splitlines() if found.returncode == 0 else []
    return lines[-1] if lines else None


def gpu_skip(options) -> str | None:
    """Why the GPU checks are skipped (--device cpu, or auto on a machine without a GPU), or None.

    `--device gpu` on a machine without one is not a skip: the checks run and fail, saying so.
    """
    device = getattr(options, "device", "auto")
    if device == "cpu":
        return "--device cpu: the GPU kernel is not run here (--device auto runs it where MAX sees a GPU)"
    if device == "auto" and visible_gpu() is None:
        return "no GPU here: MAX sees no accelerator, so the GPU kernel cannot run (skipped, not passed)"
    return None


def compiler_message(text: str, package: Path) -> str:
    """The compiler's own errors, trimmed to `file:line:col: error: ...` and the offending line."""
    lines, kept = text.splitlines(), []
    for i, line in enumerate(lines):
        if re.search(r"\.mojo:\d+:\d+: error:", line) and len(kept) < 2:
            where, _, message = line.partition(": error:")
            path, _, position = where.partition(".mojo:")
            try:
                shown = str(Path(path + ".mojo").resolve().relative_to(REPO_ROOT))
            except ValueError:
                shown = Path(path).name + ".mojo"
            source = lines[i + 1].strip() if i + 1 < len(lines) and "^" not in lines[i + 1] else ""
            kept.append(f"{shown}:{position}: error:{message}" + (f" [`{source}`]" if source else ""))
    return " | ".join(kept or [line for line in lines if line.strip() and "Crashpad" not in line][-3:])


def run_kernel(learner, probe, *args, during: str, gpu: bool = False):
    """Runs a probe that calls the fast kernel, turning kernel failures into hints."""
    try:
        result = learner.probe(probe, *args, during=during)
    except LearnerError as error:
        raised = re.search(r'An error occurred in kernel named "[^"]*":\s*(.+?)\s*(?:Fusion info:|$)', str(error), re.S)
        if gpu:  # the GPU branch's TODO, however MAX words a GPU kernel's error
            anywhere = re.search(r"TODO: [^\n\"]*", str(error))
            todo = raised.group(1) if raised and "TODO" in raised.group(1) else anywhere and anywhere.group(0)
            if todo:
                raise Fail(
                    f'Still a TODO: the fast kernel\'s GPU path raises "{todo.strip()}". Launch layer_norm_gpu in '
                    f"the GPU branch of {KERNEL_FILE}, and write normalise_row_gpu.",
                    blocks=TODO_GPU,
                ) from None
        if raised is None:
            if "no kernel named" in str(error):
                raise Fail(
                    "MAX finds no kernel named `layer_norm_fast` in the package: keep "
                    f'`@extensibility.register("layer_norm_fast")` above the struct. [{error}]'
                ) from None
            raise
        if "TODO" in raised.group(1):
            raise Fail(
                f'Still a TODO: the fast kernel raises "{raised.group(1).strip()}". Write `layer_norm_fast` in '
                f"{KERNEL_FILE}, replacing the `raise`.",
                blocks=TODO_KERNEL,
            ) from None
        raise Fail(f"The kernel raised an error while {during}: {raised.group(1).strip()}") from None
    staged = learner.memo.setdefault("staged", {"builtin": 0, "custom": set()})
    for record in (r for r in result if isinstance(r, dict) and "builtin" in r) if isinstance(result, tuple) else ():
        staged["builtin"] += record["builtin"]  # what the spy saw while the learner's code ran
        staged["custom"].update(record["custom"])
    return result


def kernel_output(value, x, gamma, beta, eps, name="mojo_layer_norm(x, gamma, beta)", diagnose=None) -> np.ndarray:
    """The kernel's output as float32 values, or Fail naming what is wrong, and where (`diagnose`: the
    positional patterns to look for, the CPU kernel's by default)."""
    y = getattr(value, "values", None)
    if isinstance(y, np.ndarray) and y.shape == x.shape:  # before the NaN check: unwritten memory holds garbage
        try:
            expect_close(
                y, layernorm(x, gamma, beta, eps), name="y", atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps)
            )
        except Fail as failure:
            if "differs from the float64 oracle" not in str(failure):
                raise  # a catalogued mistake, named
            (diagnose or diagnose_positions)(np.asarray(y, np.float64), x, gamma, beta, eps)
    return expect_array(
        value,
        name,
        kind="max",
        shape=x.shape,
        dtype="float32",
        shape_hint='Compile for TensorType(DType.float32, ["batch", dim], ...): a symbolic first dimension.',
    )


def kernel_mistakes(x, gamma, beta, eps) -> list:
    mistakes = forward_mistakes(x, gamma, beta, eps, FIXES)
    n, d = x.shape
    if 1 < n < d:  # the kernel walks the memory as d rows of n: only n columns of gamma are read
        mistakes.append(
            Mistake(
                "rows and width are swapped: rows = x.shape()[0] (the first dimension), width = x.shape()[1]",
                lambda: layernorm(x.reshape(d, n), gamma[:n], beta[:n], eps).reshape(n, d),
            )
        )
    return mistakes


def eager_output(learner, x, gamma, beta, eps) -> np.ndarray:
    y, _, inputs_after = run_kernel(
        learner,
        max_side.eager,
        x,
        gamma,
        beta,
        eps,
        during=f"calling mojo_layer_norm on a {x.shape[0]}x{x.shape[1]} input",
    )
    for name, before, after in zip(("x", "gamma", "beta"), (x, gamma, beta), inputs_after, strict=True):
        if not np.array_equal(getattr(after, "values", None), before):
            raise Fail(
                f"The kernel wrote into its input `{name}`: store results only through the output pointer "
                "(y_ptr); x, gamma and beta are read, never written."
            )
    return kernel_output(y, x, gamma, beta, eps)


def count(k: int, noun: str) -> str:
    return f"{k} {noun}{'s' * (k != 1)} {'are' if k != 1 else 'is'}"


def wrong_positions(y, x, gamma, beta, eps) -> tuple[np.ndarray, np.ndarray]:
    """Which rows, and which columns, of `y` hold a value the oracle does not (two boolean masks)."""
    wrong = ~np.isclose(y, layernorm(x, gamma, beta, eps), atol=ATOL, rtol=0)
    return wrong.any(axis=1), wrong.any(axis=0)


def statistics_of_first(head: int, divisor: int, x, gamma, beta, eps) -> np.ndarray:
    """LayerNorm with the mean and variance summed over the first `head` columns only, divided by `divisor`."""
    x = np.asarray(x, np.float64)
    mean = x[:, :head].sum(axis=1, keepdims=True) / divisor
    var = ((x[:, :head] - mean) ** 2).sum(axis=1, keepdims=True) / divisor
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def diagnose_positions(y, x, gamma, beta, eps) -> None:
    """Fail naming where the output is wrong, when only some rows or only the last columns are."""
    rows, columns = wrong_positions(y, x, gamma, beta, eps)
    n, d = np.shape(x)
    if rows.any() and not rows.all():
        bad = np.flatnonzero(rows)
        if bad[0] == n - len(bad):
            raise Fail(
                f"The last {count(len(bad), 'row')} wrong, the rows before right: the row loop stops early. Run "
                "normalise_row for every row, parallelize(normalise_row, rows), with rows = x.shape()[0]."
            )
        listed = ", ".join(map(str, bad[:5])) + ("…" if len(bad) > 5 else "")
        raise Fail(
            f"Rows {listed} are wrong, the others right: check the row offset (row * width) of their loads and stores."
        )
    if columns.any() and not columns.all() and np.flatnonzero(columns)[0] == d - columns.sum():
        tail = int(columns.sum())
        if any(d % w == tail for w in SIMD_WIDTHS):
            raise Fail(
                f"Only the last {tail} columns are wrong (D = {d} is not a multiple of the SIMD width): the tail "
                f"is dropped. After the vector loop, normalise columns {d - tail}..{d - 1} one at a time."
            )
        raise Fail(
            f"The last {count(tail, 'column')} wrong, the others right: an off-by-one in a column loop? Every "
            "loop runs col = 0 .. width - 1 (while col < width)."
        )
    for head, tail in ((d - d % w, d % w) for w in SIMD_WIDTHS if d % w and d > w):
        for divisor in (head, d):  # statistics summed over whole vectors only
            skipped = statistics_of_first(head, divisor, x, gamma, beta, eps)
            if np.allclose(y[:, :head], skipped[:, :head], atol=ATOL):
                output = "" if np.allclose(y[:, head:], skipped[:, head:], atol=ATOL) else " and out of the output"
                raise Fail(
                    f"The tail is left out of the statistics{output}: the sums cover only the first {head} of "
                    f"{d} columns (whole vectors only). After each vector loop, add the last {tail} columns one "
                    "at a time, and divide by D."
                )


def kernel_matches(learner, x, gamma, beta, eps) -> str:
    y = eager_output(learner, x, gamma, beta, eps)
    return expect_close(
        y, layernorm(x, gamma, beta, eps), name="y", atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps)
    )


def case(seed, n, d):
    return random_case(seed, (n, d), dtype="float32")


def large_mean_case(seed: int, d: int):
    """Rows around 1e4 with unit spread, gamma = 1, beta = 0: where E[x²] - E[x]² cancels in float32."""
    x = (1e4 + np.random.default_rng(seed).normal(size=(8, d))).astype(np.float32)
    return x, np.ones(d, np.float32), np.zeros(d, np.float32)


def kernel_large_mean(y, x, gamma, beta) -> str:
    fix = "Take the mean first, then average (x - mean)² in a second pass over the row (or use Welford's update)."
    return judge_large_mean(y, x, gamma, beta, limit=2e-2, fix=fix, name="mojo_layer_norm(x, gamma, beta)", kind="max")


# -- the GPU path ---------------------------------------------------------------------------------
def gpu_run(learner, x, gamma, beta, eps):
    """The fast kernel's output on the GPU, as a TensorRecord that says where it was computed."""
    n, d = x.shape
    record = run_kernel(
        learner,
        max_side.eager_on_gpu,
        getattr(learner.options, "device", "auto"),
        x,
        gamma,
        beta,
        eps,
        during=f"calling mojo_layer_norm on a {n}x{d} input on the GPU",
        gpu=True,
    )
    on_the_gpu(record, "mojo_layer_norm on GPU tensors")
    return record


def on_the_gpu(record, name: str) -> None:
    device = getattr(record, "device", "")
    if isinstance(record, TensorRecord) and not device.startswith("gpu"):
        raise Fail(f"{name} came back on {device}, not on the GPU: the op must run where its inputs are.")


def diagnose_gpu(y, x, gamma, beta, eps) -> None:
    """Fail naming the GPU mistakes that leave a pattern: rows past the grid, columns past one sweep of the block."""
    rows, columns = wrong_positions(y, x, gamma, beta, eps)
    n, d = np.shape(x)
    if rows.any() and not rows.all():
        bad = np.flatnonzero(rows)
        if bad[0] == GPU_MAX_GRID and len(bad) == n - GPU_MAX_GRID:
            raise Fail(
                f"Rows {GPU_MAX_GRID} and beyond are wrong, the rows before right: the grid has at most "
                f"{GPU_MAX_GRID} blocks, so a block must take several rows (row = block_idx.x, then "
                "row += grid_dim.x while row < rows)."
            )
        listed = ", ".join(map(str, bad[:5])) + ("…" if len(bad) > 5 else "")
        raise Fail(
            f"Rows {listed} are wrong on the GPU, the others right: check the row offset (row * width) of their "
            "loads and stores."
        )
    sweeps = [head for head in (GPU_BLOCK, GPU_BLOCK * GPU_VEC) if head < d]
    if columns.any() and not columns.all():
        first = int(np.flatnonzero(columns)[0])
        if first in sweeps and columns[first:].all():
            raise Fail(
                f"Columns {first} to {d - 1} are wrong, the first {first} right: one sweep of the block covers "
                f"{first} columns and D = {d}. Each thread must loop over its columns: while col < width, "
                "col += STRIDE (GPU_BLOCK * V)."
            )
    for head in sweeps:
        for divisor in (head, d):
            partial = statistics_of_first(head, divisor, x, gamma, beta, eps)
            if np.allclose(y[:, :head], partial[:, :head], atol=ATOL):
                raise Fail(
                    f"The statistics cover only the first {head} of {d} columns, one sweep of the block: each "
                    "thread must keep adding its columns (while col < width: ...; col += STRIDE) before "
                    "block_sum, and the sums are divided by D."
                )


def gpu_matches_oracle(learner, x, gamma, beta, eps) -> float:
    y = kernel_output(
        gpu_run(learner, x, gamma, beta, eps),
        x,
        gamma,
        beta,
        eps,
        "mojo_layer_norm(x, gamma, beta) on the GPU",
        diagnose_gpu,
    )
    expected = layernorm(x, gamma, beta, eps)
    expect_close(y, expected, name="y", atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps))
    return float(np.max(np.abs(y.astype(np.float64) - expected)))


def compiled_outputs_match(outputs, xs, gamma, beta, eps, *, gpu: bool = False) -> float:
    """Each output of the learner's compiled graph against the oracle (on the GPU, it must have stayed there);
    the worst error."""
    worst = 0.0
    for x, record in zip(xs, outputs, strict=True):
        name = f"the compiled graph's output for N={x.shape[0]}"
        if gpu and isinstance(record, TensorRecord) and not record.device.startswith("gpu"):
            raise Fail(
                f"{name} came back on {record.device}, not on the GPU: compile for the device you are given "
                "(layer.to(device), and DeviceRef.from_device(device) in the TensorType)."
            )
        y = kernel_output(record, x, gamma, beta, eps, name=name, diagnose=diagnose_gpu if gpu else None)
        expected = layernorm(x, gamma, beta, eps)
        shown = name if gpu else f"compiled output (N={x.shape[0]})"
        expect_close(y, expected, name=shown, atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps))
        worst = max(worst, float(np.max(np.abs(y.astype(np.float64) - expected))))
    return worst


def device_note(options) -> str:
    """The report's first line: which device runs the CPU checks and which the GPU checks, or why those are skipped."""
    skipped, gpu = gpu_skip(options), visible_gpu()
    if skipped:
        return f"Device: the CPU. The GPU checks are skipped: {skipped}."
    if gpu:
        return f"Devices: the CPU checks on the CPU, the GPU checks on {gpu}."
    return "Device: the CPU. --device gpu was asked for, but MAX sees no GPU here: the GPU checks fail."


def speed_note(learner, shape, eps) -> list[str]:
    """The learner's compiled graph (of width shape[1], this eps) against the built-in's, timed in turns.

    The ratio is what it says, on this machine, now; a busy machine slows both, and the spread of the
    timings says when it was too busy for the ratio to mean much.
    """
    try:
        times = learner.probe(max_side.speed, *shape, 25, eps, during="timing compiled graphs")
    except (Fail, LearnerError) as error:
        return [f"Speed: not measured ({error})."]
    ratio = times["yours"]["median"] / times["builtin"]["median"]
    line = (
        f"Speed at {shape[0]} x {shape[1]}: yours {times['yours']['median'] * 1e3:.2f} ms, the "
        f"built-in {times['builtin']['median'] * 1e3:.2f} ms (median of 25, in turns): {ratio:.1f}× its time."
    )
    if max(times[k]["spread"] for k in times) > 0.5:
        return [line, "The timings spread widely: the machine looks busy, so take the ratio as rough."]
    if ratio > 3:
        return [line, "Much slower than the built-in: vectorise the inner loops (SIMD) and parallelize over rows."]
    return [line]
