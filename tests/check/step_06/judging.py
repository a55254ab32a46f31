"""Judging a LayerNorm kernel (step 06): where its output is wrong and why, in hints a learner can act on.

Judge side: the kernel's catalogued mistakes, the positional patterns of a wrong output (rows, the SIMD tail, a
GPU block's sweep, rows past the grid), the Mojo compiler's messages, and `run_kernel`, which runs a kernel probe
(`probes.compiled_kernel`, ...) in the learner's process and turns a kernel's failures into hints.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.check.engine import REPO_ROOT, Fail
from tests.check.kit.judging import Mistake, expect_array, expect_close, judge_large_mean, layernorm, random_case
from tests.check.kit.mistakes import NO_FIX, MistakeKey, forward_mistakes
from tests.check.sandbox import LearnerError
from tests.check.step_06 import kernel_harness, probes
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
    MistakeKey.EPS_IGNORED: "use the struct's parameter, `Self.epsilon`, in rstd = 1 / sqrt(var + Self.epsilon)",
    MistakeKey.NO_EPS: "rstd = 1 / sqrt(var + Self.epsilon)",
    MistakeKey.UNBIASED: "divide the sum of squares by width",
    MistakeKey.EPS_OUTSIDE: "rstd = 1 / sqrt(var + Self.epsilon)",
    MistakeKey.SWAPPED: NO_FIX,
    MistakeKey.NO_AFFINE: "y = xhat * gamma + beta",
    MistakeKey.NOT_CENTRED: "xhat = (x - mean) * rstd",
    MistakeKey.TIMES_STD: "rstd = 1 / sqrt(var + Self.epsilon)",
    MistakeKey.ROWS_SHIFTED_DOWN: "row r must read and write at offset r * width (check the unsafe_offset lines)",
    MistakeKey.ROWS_SHIFTED_UP: "row r must read and write at offset r * width (check the unsafe_offset lines)",
    MistakeKey.ROW_ZERO: (
        "the row index is not used where x and y are read and written (x_ptr.unsafe_offset(row * width))"
    ),
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
    """The kernel's output (a MAX tensor, or the harness's array) as float32 values, or Fail naming what is wrong,
    and where (`diagnose`: the positional patterns to look for, the CPU kernel's by default)."""
    y = value if isinstance(value, np.ndarray) else getattr(value, "values", None)
    if isinstance(y, np.ndarray) and y.shape == x.shape:  # before the NaN check: unwritten memory holds garbage
        try:
            expect_close(
                y, layernorm(x, gamma, beta, eps), name="y", atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps)
            )
        except Fail as failure:
            if "differs from the float64 oracle" not in str(failure):
                raise  # a catalogued mistake, named
            diagnose_statistics(np.asarray(y, np.float64), x, gamma, beta, eps)
            (diagnose or diagnose_positions)(np.asarray(y, np.float64), x, gamma, beta, eps)
    if isinstance(value, np.ndarray):
        return expect_array(value, name, shape=x.shape, dtype="float32")
    return expect_array(
        value,
        name,
        kind="max",
        shape=x.shape,
        dtype="float32",
        shape_hint='Compile for TensorType(DType.float32, ["batch", dim], ...): a symbolic first dimension.',
    )


def diagnose_statistics(y, x, gamma, beta, eps) -> None:
    """Fail naming a wrong mean or variance when every row is still an affine function of its x, as LayerNorm is:
    (y - beta) / gamma = (x - mean') * rstd' row by row. The mean' and rstd' the kernel used, read off the fit,
    say what went wrong: a sum divided by the wrong count (Welford's count, the vectors' columns) or a variance
    that is off by the same factor in every row."""
    n, d = x.shape
    if d < 8 or not np.all(np.isfinite(y)):
        return
    x64 = np.asarray(x, np.float64)
    t = (y - np.asarray(beta, np.float64)) / np.asarray(gamma, np.float64)
    centred = x64 - x64.mean(axis=1, keepdims=True)
    slope = (centred * (t - t.mean(axis=1, keepdims=True))).sum(axis=1) / (centred**2).sum(axis=1)
    intercept = t.mean(axis=1) - slope * x64.mean(axis=1)
    residual = np.abs(t - (slope[:, None] * x64 + intercept[:, None])).max(axis=1)
    if np.any(residual > 1e-3 * np.abs(t).max(axis=1)) or np.any(slope <= 0):
        return  # not LayerNorm-shaped row by row: a positional mistake, or gamma and beta misread
    mean, var = x64.mean(axis=1), x64.var(axis=1)
    used_mean, used_var = -intercept / slope, 1 / slope**2 - eps
    spread = np.sqrt(var)
    factor = float((used_mean * mean).sum() / (mean * mean).sum())  # used_mean = factor * mean, fitted over the rows
    fits = bool(np.all(np.abs(used_mean - factor * mean) <= 1e-3 * spread))
    if fits and abs(factor - 1) > 1e-4:
        divisor = d / factor if factor > 0 else np.nan
        if abs(divisor - round(divisor)) < 0.01:
            raise Fail(
                f"The mean is the row's sum divided by {round(divisor)}, not by D = {d}, in every row: divide by the "
                "number of values summed, Float32(width) (with Welford's update, the count goes up by one per value)."
            )
        raise Fail(
            f"The mean is {factor:.4g} times the right one in every row: check the sum of the row (every column, once) "
            "and the division by D."
        )
    mean_off = np.abs(used_mean - mean) > 1e-3 * (np.abs(mean) + spread)
    if mean_off.all():
        raise Fail(
            "The mean is wrong in every row, while each row is still scaled and shifted as one: check the sum "
            "of the row (every column, once) and the division by D."
        )
    if mean_off.any():
        return  # some rows right: not a mistake in how every row's mean is taken
    scale = used_var / var
    if np.allclose(scale, np.median(scale), rtol=1e-3):
        divisor = d / float(np.median(scale))
        if abs(divisor - round(divisor)) < 0.01 and round(divisor) != d:
            raise Fail(
                f"The variance is the sum of squares divided by {round(divisor)}, not by D = {d}, in every row: "
                "var = sum((x - mean)²) / D, and the mean's sum divided by D too (with Welford's update, M2 / count, "
                "and the count is D at the end)."
            )
        raise Fail(
            f"The mean is right but the variance is {float(np.median(scale)):.3g} times the right one in every row: "
            "var = sum((x - mean)²) / D, then rstd = 1 / sqrt(var + Self.epsilon)."
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
    if 1 < n <= d:  # gamma or beta read at the row index: one scale (or shift) per row instead of per column
        xhat = layernorm(x, 1.0, 0.0, eps)
        per_row = {"gamma": gamma[:n, None], "beta": beta[:n, None]}
        for name, shape in (("gamma", "scale"), ("beta", "shift")):
            scale = per_row["gamma"] if name == "gamma" else gamma
            shift = per_row["beta"] if name == "beta" else beta
            mistakes.append(
                Mistake(
                    f"{name} is read at the row index: each row gets one {shape}, {name}[row]. {name} has one value "
                    f"per column, the same for every row: load it at col, {name}_ptr.unsafe_load[width=W](col)",
                    lambda scale=scale, shift=shift: xhat * scale + shift,
                )
            )
    return mistakes


# -- the CPU kernel, called by the checker's own harness (kernel_harness) -----------------------------------
KERNEL_HANGS = "your kernel never returns (see above)."
KERNEL_CRASHED = "your kernel crashed the process (see above)."
MEMORY_WRONG = "your kernel reads or writes the wrong memory (see the memory check above)."
RACE = "your kernel's rows race each other (see the threads check above)."
ROW_LOOP = "Run normalise_row once per row: parallelize(normalise_row, rows), with rows = x.shape()[0], not the width."
COLUMN_LOOPS = (
    "Every loop over a row must stop at its end: `while col < width` (not <=), a full vector only while "
    "col + W <= width, then the last width % W columns one at a time"
)


def harness_build(learner):
    """The built harness for the learner's package (started by `start_harness_build` when the run began)."""
    builder = learner.memo.get("harness") or start_harness_build(learner)
    return builder.result()


def start_harness_build(learner):
    """Starts compiling the learner's kernel into the checker's harness, beside whatever runs next."""
    if "harness" not in learner.memo:
        scale = getattr(learner.options, "timeout_scale", None) or 1.0
        learner.memo["harness"] = kernel_harness.Builder(Path(learner.path).parent, scale)
    return learner.memo["harness"]


def harness_output(learner, x, gamma, beta, eps, guarded_reads: bool = False, calls: int = 1) -> np.ndarray:
    """The learner's CPU kernel on (x, gamma, beta, eps), called directly on guarded buffers: its output as float32
    values, or Fail naming a hang, a crash, a raised error or a memory mistake (reads or writes outside the rows)."""
    build = harness_build(learner)
    if build.binary is None:
        raise Fail(f"Not run: {NO_PACKAGE}", blocks=NO_PACKAGE)
    scale = getattr(learner.options, "timeout_scale", None) or 1.0
    call = kernel_harness.run(build.binary, x, gamma, beta, eps, scale, calls, wide=guarded_reads)
    judge_call(call, x, gamma, beta, eps, guarded_reads=guarded_reads)
    return call.y


def judge_call(call, x, gamma, beta, eps, *, guarded_reads: bool = True) -> None:
    """Fail naming what went wrong in one call, worst first: it did not return, it raised or crashed, it wrote
    outside its output or into its inputs, it stored or read rows at the wrong place, it left outputs unwritten,
    it read past the end of an input (`guarded_reads`: where the input's rows are moderate, so that a NaN can only
    come from the NaN around them). Only the output's final values can vary between runs (threads); every verdict
    here rests on what cannot: which memory was touched, and what the untouched memory still holds."""
    judge_outcome(call, x, gamma, beta, eps)
    if call.inputs_changed:
        name = call.inputs_changed[0]
        raise Fail(
            f"The kernel wrote into its input `{name}`: store results only through the output pointer (y_ptr); "
            "x, gamma and beta are read, never written."
        )
    width = f"W = {call.simd_width}" if call.simd_width else "W"
    expected = layernorm(x, gamma, beta, eps)
    _judge_addresses(call, x, gamma, beta, eps, expected, width)
    if guarded_reads:
        _judge_reads_past_the_end(call.y, x, expected, width)
    _judge_race(call)


def judge_outcome(call, x, gamma, beta, eps) -> None:
    """Fail when the call did not return: over its budget, a raised Error (a TODO's), a crash."""
    shape = f"a {x.shape[0]}x{x.shape[1]} input"
    if call.outcome == "stalled":
        raise Fail(_stalled(call, shape), blocks=KERNEL_HANGS)
    if call.outcome == "raised":
        raised = re.search(r"Unhandled exception caught during execution: (.+)", call.message)
        text = (raised.group(1) if raised else call.message.splitlines()[-1] if call.message else "").strip()
        if "TODO" in text:
            raise Fail(
                f'Still a TODO: the fast kernel raises "{text}". Write `layer_norm_fast` in {KERNEL_FILE}, '
                "replacing the `raise`.",
                blocks=TODO_KERNEL,
            )
        raise Fail(f"The kernel raised an error on {shape}: {text or 'no message'}.")
    if call.outcome == "crashed":
        if call.signal_name == "SIGXFSZ":
            raise Fail(
                f"The kernel printed more than {kernel_harness.OUTPUT_BYTES >> 20} MB on {shape} and was stopped: "
                "remove the print from its loop."
            )
        if np.allclose(call.y, layernorm(x, gamma, beta, eps), atol=ATOL):
            raise Fail(
                f"The kernel crashed the process ({call.signal_name}) on {shape} after writing every row right: it "
                f"went on past the last row. {ROW_LOOP}",
                cause=KERNEL_CRASHED,
            )
        raise Fail(
            f"The kernel crashed the process ({call.signal_name}) on {shape}: a load or store far outside its "
            "buffers. Row r starts at r * width; check every unsafe_offset, unsafe_load and unsafe_store, and the "
            "row count given to parallelize.",
            cause=KERNEL_CRASHED,
        )


def _judge_race(call) -> None:
    if call.different_calls:
        raise Fail(
            f"The same input gave other outputs in {call.different_calls} of {call.calls} calls (first in row "
            f"{call.first_different_row}): the rows share something that threads write at the same time, a race. "
            "Keep each row's sums, mean and rstd in variables of its own, declared inside normalise_row, and write "
            "only that row's part of y."
        )


def race_free(learner, calls: int = 10) -> str:
    """Many rows with different statistics, the kernel called `calls` times on them in one process: a kernel whose
    rows share state (a race between threads) gives other bits in some calls. Races need threads running at once,
    so the input is large (16384 x 768: rows long enough to overlap); it is a test of chance, not a proof."""
    build = harness_build(learner)
    if build.binary is None:
        raise Fail(f"Not run: {NO_PACKAGE}", blocks=NO_PACKAGE)
    block, gamma, beta = case(11, 256, 768)
    x = np.tile(block, (64, 1)) + (np.arange(64 * 256, dtype=np.float32) % 97)[:, None] / 8  # rows differ
    scale = getattr(learner.options, "timeout_scale", None) or 1.0
    call = kernel_harness.run(build.binary, x, gamma, beta, 1e-5, scale, calls)
    judge_outcome(call, x, gamma, beta, 1e-5)
    _judge_race(call)
    return f"the same output in all {calls} calls"


def _stalled(call, shape: str) -> str:
    """A kernel over its time budget: how long it had, and what its output says about where it stopped."""
    unwritten = call.y == kernel_harness.CANARY
    n = call.y.shape[0]
    told = (
        f"Your kernel did not return within {call.budget:.1f} s on {shape}, where the plain reference loop took "
        f"{call.reference_seconds * 1e3:.2f} ms in the same process: a loop never ends. "
    )
    if unwritten.all():
        return told + (
            "It had written no output yet, so the loop is in the statistics (the mean or the variance pass): does "
            "each loop advance its counter (col += W in the vector loop, col += 1 in the tail) and end "
            "(while col + W <= width, then while col < width)?"
        )
    done = int((~unwritten).all(axis=1).sum())
    return told + (
        f"It had written {int((~unwritten).sum())} of the {unwritten.size} outputs ({done} of {n} rows whole), so a "
        "loop in the output pass, or in a later row, never ends: does it advance col, and stop at width?"
    )


# The row offsets a kernel may use by mistake, as a hint names each (r: the row, n: the rows, d: the width).
OFFSETS = {
    "at row * width": lambda r, n, d: r * d,
    "at element `row` (row, not row * width)": lambda r, n, d: r,
    "at element 0 (the row index is not used)": lambda r, n, d: 0,
    "at the next row's start, (row + 1) * width": lambda r, n, d: (r + 1) * d,
    "at the next row's start, ((row + 1) % rows) * width": lambda r, n, d: ((r + 1) % n) * d,
    "at row * (width - 1)": lambda r, n, d: r * (d - 1),
    "at row * (width + 1)": lambda r, n, d: r * (d + 1),
}
RIGHT = "at row * width"


def _rows_read_at(x, offset, gamma, beta, eps) -> np.ndarray:
    """The output of a LayerNorm whose row r reads x from element offset(r) on (NaN past the ends, as there)."""
    n, d = x.shape
    padded = np.concatenate([x.ravel().astype(np.float64), np.full(d * 2 + 2, np.nan)])
    rows = np.stack([padded[offset(r, n, d) : offset(r, n, d) + d] for r in range(n)])
    return layernorm(rows, gamma, beta, eps)


def _explains(region, origin: int, values, store, written, atol) -> bool:
    """Whether storing row r's `values` from element store(r) of y on (y starting at `origin` in `region`, the output
    with its guards) writes exactly the cells written, each equal to one of the values stored there (overlapping
    rows: whichever thread came last)."""
    n, d = values.shape
    covered, best = np.zeros(region.size, bool), np.full(region.size, np.inf)
    flat = region.astype(np.float64)
    for r in range(n):
        start = origin + store(r, n, d)
        if start < 0 or start + d > region.size:
            return False  # it would have written beyond the guards: a crash or memory the checker cannot see
        cells = slice(start, start + d)
        covered[cells] = True
        gap = np.abs(flat[cells] - values[r])
        gap[np.isnan(flat[cells]) & np.isnan(values[r])] = 0.0
        best[cells] = np.minimum(best[cells], np.nan_to_num(gap, nan=np.inf))
    return bool(np.array_equal(covered, written) and np.all(best[written] <= atol))


def _judge_addresses(call, x, gamma, beta, eps, expected, width: str) -> None:
    """Fail naming a row offset that is not row * width (where the rows were read or stored, inside y or in the
    guards around it), a write outside y, or outputs never written (the tail, whole rows), when the cells the kernel
    wrote say so unambiguously."""
    n, d = x.shape
    region = np.concatenate([call.before, call.y.ravel(), call.after])
    origin = call.before.size
    written = region != kernel_harness.CANARY
    if _explains(region, origin, expected, OFFSETS[RIGHT], written, ATOL):
        return
    right = [OFFSETS[RIGHT](r, n, d) for r in range(n)]
    offsets = {name: at for name, at in OFFSETS.items() if name == RIGHT or [at(r, n, d) for r in range(n)] != right}
    for read_name, read in offsets.items():
        values = expected if read_name == RIGHT else _rows_read_at(x, read, gamma, beta, eps)
        for store_name, store in offsets.items():
            if (read_name, store_name) != (RIGHT, RIGHT) and _explains(region, origin, values, store, written, ATOL):
                raise Fail(_misplaced(read_name, store_name))
    after = np.flatnonzero(written[origin + n * d :])
    if after.size:
        past = int(after[-1]) + 1
        if past >= d:
            raise Fail(
                f"The kernel writes past the end of y, {past} values and more: rows past the last one are stored. "
                + ROW_LOOP
            )
        columns = f"column {d}" if past == 1 else f"columns {d}..{d + past - 1}"
        raise Fail(
            f"The kernel writes past the end of its rows: the last row stored {past} value{'s' * (past > 1)} after "
            f"the end of y ({columns} of a {d}-wide row), and every other row does the same into the start of the "
            f"next row. {COLUMN_LOOPS.replace('W', width, 1)}."
        )
    if written[:origin].any():
        raise Fail("The kernel writes before the start of y: a store at a negative offset (row - 1, or col - 1?).")
    y = call.y
    if not written[origin : origin + n * d].any():
        raise Fail("The kernel returned without writing any output: store each row's result through y_ptr.")
    unwritten = y == kernel_harness.CANARY
    if not unwritten.any():
        return
    rows, columns = unwritten.all(axis=1), unwritten.all(axis=0)
    first = int(np.flatnonzero(columns)[0]) if columns.any() else d
    if columns[first:].all() and np.array_equal(unwritten, np.broadcast_to(columns, unwritten.shape)):
        head = slice(None, first)
        sums = any(
            np.allclose(y[:, head], statistics_of_first(first, divisor, x, gamma, beta, eps)[:, head], atol=ATOL)
            for divisor in (first, d)
        )
        also = f", and the statistics sum only the first {first} columns too" if sums and first < d else ""
        columns = (
            f"Column {first} of every row is never written"
            if first == d - 1
            else f"Columns {first}..{d - 1} of every row are never written"
        )
        raise Fail(
            f"{columns} (the checker's canary values are still there): the tail is dropped{also}. "
            f"After each vector loop, handle the last {d - first} column{'s' * (d - first > 1)} one at a time "
            "(and divide the sums by D)."
        )
    if np.array_equal(unwritten, np.broadcast_to(rows[:, None], unwritten.shape)):
        fail_on_rows(rows, "never written", "run normalise_row for every row, rows = x.shape()[0]")
    where = tuple(int(i) for i in np.argwhere(unwritten)[0])
    raise Fail(
        f"{int(unwritten.sum())} outputs are never written (first at {where}; the checker's canary values are still "
        "there): every row's every column must be stored, the tail included."
    )


def _misplaced(read: str, store: str) -> str:
    if read == store:
        return (
            f"Each row is read and stored {read} instead of at row * width: row r of x and of y starts at r * width "
            "(xs = x_ptr.unsafe_offset(row * width), ys = y_ptr.unsafe_offset(row * width))."
        )
    if read == RIGHT:
        return (
            f"Each row's result lands in the wrong place: it is stored {store} instead of at row * width "
            "(ys = y_ptr.unsafe_offset(row * width))."
        )
    stored = "" if store == RIGHT else f", and stored {store}"
    return (
        f"Each row is read from x {read} instead of at row * width{stored}: row r starts at r * width "
        "(xs = x_ptr.unsafe_offset(row * width))."
    )


def _judge_reads_past_the_end(y, x, expected, width: str) -> None:
    """Fail when NaN came out where the checker put NaN around the inputs: a read past the end of x, gamma or beta."""
    leaked = np.isnan(y) & ~np.isnan(expected)
    if not leaked.any():
        return
    n, d = x.shape
    rows = leaked.any(axis=1)
    if rows[-1] and not rows[:-1].any():
        raise Fail(
            "The last row came out NaN: it read past the end of x, where the checker put NaN (every other row read "
            f"the first values of the next row instead). {COLUMN_LOOPS.replace('W', width, 1)}."
        )
    if n > 1 and not rows[0] and np.allclose(y[0], expected[0], atol=ATOL):
        raise Fail(
            "Row 0 is right and later rows came out NaN: they read gamma or beta past their end, where the "
            "checker put NaN. gamma and beta hold one value per column, the same for every row: read them at col, "
            "not at row * width + col."
        )
    raise Fail(
        f"NaN came out in {int(leaked.sum())} places (first at {tuple(int(i) for i in np.argwhere(leaked)[0])}) on "
        "rows of moderate values: the kernel read outside x, gamma or beta, where the checker put NaN. Check each "
        "offset and loop bound."
    )


def kernel_matches(learner, x, gamma, beta, eps) -> str:
    """The learner's CPU kernel (called directly) against the oracle, every mistake named where it can be."""
    y = kernel_output(harness_output(learner, x, gamma, beta, eps), x, gamma, beta, eps)
    return expect_close(
        y, layernorm(x, gamma, beta, eps), name="y", atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps)
    )


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


ROW_LOOP_STOPS_EARLY = (
    "the row loop stops early. Run normalise_row for every row, parallelize(normalise_row, rows), with "
    "rows = x.shape()[0]."
)


def fail_on_rows(bad_rows: np.ndarray, state: str, fix: str, others: str = "") -> None:
    """Fail naming the rows in `state` ("wrong", "never written"); the last rows alone: the row loop stops early."""
    bad, n = np.flatnonzero(bad_rows), len(bad_rows)
    if bad[0] == n - len(bad):
        before = ", the rows before right" if others else ""
        raise Fail(f"The last {count(len(bad), 'row')} {state}{before}: {ROW_LOOP_STOPS_EARLY}")
    listed = ", ".join(map(str, bad[:5])) + ("…" if len(bad) > 5 else "")
    rows = f"Row {listed} is" if len(bad) == 1 else f"Rows {listed} are"
    raise Fail(f"{rows} {state}{', ' + others if others else ''}: {fix}.")


def diagnose_positions(y, x, gamma, beta, eps) -> None:
    """Fail naming where the output is wrong, when only some rows or only the last columns are."""
    rows, columns = wrong_positions(y, x, gamma, beta, eps)
    n, d = np.shape(x)
    if rows.any() and not rows.all():
        fail_on_rows(rows, "wrong", "check the row offset (row * width) of their loads and stores", "the others right")
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


# -- the compiled Module (step 06's glue), built in the learner's process --------------------------------------
SPEED_SHAPE = (4096, 768)  # the compiled Module's width, and the speed line's shape
COMPILED_EPS = 0.5  # the compiled-Module check's eps (not the default: a forward that drops self.eps shows)


def compiled_run(learner):
    """compile_mojo_layer_norm(768) built once per run, in the learner's process, and run on N=3 and N=50: its
    outputs with their inputs. What MAX staged meanwhile lands in learner.memo["staged"]."""
    _, gamma, beta = case(6, 1, SPEED_SHAPE[1])
    xs = [case(60 + n, n, SPEED_SHAPE[1])[0] for n in (3, 50)]
    if "compiled" not in learner.memo:
        try:
            outputs, _ = run_kernel(
                learner,
                probes.compiled_kernel,
                SPEED_SHAPE[1],
                gamma,
                beta,
                COMPILED_EPS,
                xs,
                during="compiling and running compile_mojo_layer_norm(768)",
            )
            learner.memo["compiled"] = outputs
        except LearnerError as error:
            learner.memo["compiled"] = error
            if re.search(r"expected .*shape \[Dim\(\d+\)", str(error)):
                learner.memo["compiled"] = Fail(
                    "The compiled graph only takes one batch size: compile for a symbolic first dimension, "
                    f'TensorType(DType.float32, ["batch", dim], device_ref). [{error}]'
                )
        except Fail as verdict:
            learner.memo["compiled"] = verdict
    if isinstance(learner.memo["compiled"], Exception):
        raise learner.memo["compiled"]
    return learner.memo["compiled"], xs, gamma, beta, COMPILED_EPS


def kernel_right(learner, x, gamma, beta, eps) -> bool:
    """Whether the learner's kernel, called directly, is right on this input (so a wrong graph is the glue's)."""
    try:
        y = harness_output(learner, x, gamma, beta, eps)
    except Fail:
        return False
    return bool(np.allclose(y, layernorm(x, gamma, beta, eps), atol=1e-4))


def case(seed, n, d):
    return random_case(seed, (n, d), dtype="float32")


def large_mean_case(seed: int, d: int):
    """Rows around 1e4 with unit spread, gamma = 1, beta = 0: where E[x²] - E[x]² cancels in float32."""
    x = (1e4 + np.random.default_rng(seed).normal(size=(8, d))).astype(np.float32)
    return x, np.ones(d, np.float32), np.zeros(d, np.float32)


def kernel_large_mean(y, x, gamma, beta) -> str:
    fix = "Take the mean first, then average (x - mean)² in a second pass over the row (or use Welford's update)."
    harness = isinstance(y, np.ndarray)  # the harness's array (the CPU kernel), or a MAX tensor (the GPU path)
    name = "your kernel's y" if harness else "mojo_layer_norm(x, gamma, beta)"
    return judge_large_mean(y, x, gamma, beta, limit=2e-2, fix=fix, name=name, kind="numpy" if harness else "max")


# -- the GPU path ---------------------------------------------------------------------------------
def gpu_run(learner, x, gamma, beta, eps):
    """The fast kernel's output on the GPU, as a TensorRecord that says where it was computed."""
    n, d = x.shape
    record = run_kernel(
        learner,
        probes.eager_on_gpu,
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
        times = learner.probe(probes.speed, *shape, 25, eps, during="timing compiled graphs")
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
