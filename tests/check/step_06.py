"""Step 06 checklist: a LayerNorm kernel in Mojo, registered as a MAX custom op.

The learner's step is a folder: a Mojo package (`layer_norm.mojo`) plus Python glue (`step_06.py`).
The checks run the glue in the learner's process; it compiles the package. Every kernel output is
judged against the float64 oracle here. The CPU checks always run on the CPU; the GPU checks (last)
run where MAX sees a GPU (`--device auto|gpu`), and are skipped, saying why, where it sees none.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.check.kit import (
    REPO_ROOT,
    Checklist,
    Fail,
    LearnerError,
    Mistake,
    TensorRecord,
    expect_array,
    expect_close,
    forward_mistakes,
    layernorm,
    max_side,
    random_case,
)

KERNEL_FILE = "layer_norm.mojo"
SPEED_SHAPE = (4096, 768)
COMPILED_EPS = 0.5  # the compiled-Module check's eps (not the default: a forward that drops self.eps shows)
ATOL = 1e-4  # float32 kernel against the float64 oracle; the classic mistakes are far larger
SIMD_WIDTHS = (4, 8, 16, 32, 64)  # the vector widths a tail bug can be tied to
NO_PACKAGE = "the Mojo package does not compile (see above)."
TODO_KERNEL = "the fast kernel is still a TODO (see above)."
TODO_GPU = "the GPU path of the fast kernel is still a TODO (see above)."
# The solution's launch (layer_norm.mojo): one block of GPU_BLOCK threads per row, GPU_VEC-float loads, and
# at most GPU_MAX_GRID blocks; the GPU shapes straddle each (D = 1, D beyond a block's sweep, more rows
# than blocks), and mistakes tied to them are named.
GPU_BLOCK, GPU_VEC, GPU_MAX_GRID = 256, 4, 65536
GPU_SHAPES = ((64, 768), (37, 771), (1, 771), (3, 771), (5, 1), (3, 4099), (2, 8192), (GPU_MAX_GRID + 5, 3))
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


def add_arguments(parser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="where the GPU checks run (default auto: on the GPU when MAX sees one); the CPU checks always run",
    )


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


def notes(options) -> list[str]:
    skipped, gpu = gpu_skip(options), visible_gpu()
    if skipped:
        device = f"Device: the CPU. The GPU checks are skipped: {skipped}."
    elif gpu:
        device = f"Devices: the CPU checks on the CPU, the GPU checks on {gpu}."
    else:
        device = "Device: the CPU. --device gpu was asked for, but MAX sees no GPU here: the GPU checks fail."
    return [
        device,
        "The first run compiles your Mojo package and the MAX kernels (minutes on a slow machine);",
        "after each edit of layer_norm.mojo the kernel graphs compile again (tens of seconds).",
    ]


def speed(learner, options, report) -> list[str]:
    """Your compiled graph against the built-in's, timed in turns in one process: a note, not a check.

    The ratio is what it says, on this machine, now; a busy machine slows both, and the spread of the
    timings says when it was too busy for the ratio to mean much.
    """
    if not report.passed or getattr(options, "quick", False) or getattr(options, "only", None):
        return []
    try:
        # The compiled check's graph (same width, its eps): timing it costs no compile of its own.
        times = learner.probe(max_side.speed, *SPEED_SHAPE, 25, COMPILED_EPS, during="timing compiled graphs")
    except (Fail, LearnerError) as error:
        return [f"Speed: not measured ({error})."]
    ratio = times["yours"]["median"] / times["builtin"]["median"]
    line = (
        f"Speed at {SPEED_SHAPE[0]} x {SPEED_SHAPE[1]}: yours {times['yours']['median'] * 1e3:.2f} ms, the "
        f"built-in {times['builtin']['median'] * 1e3:.2f} ms (median of 25, in turns): {ratio:.1f}× its time."
    )
    if max(times[k]["spread"] for k in times) > 0.5:
        return [line, "The timings spread widely: the machine looks busy, so take the ratio as rough."]
    if ratio > 3:
        return [line, "Much slower than the built-in: vectorise the inner loops (SIMD) and parallelize over rows."]
    return [line]


checklist = Checklist(
    step="06",
    preload=(
        "max.experimental.tensor",
        "max.experimental.nn",
        "max.experimental.functional",
        "tests.check.kit.max_side",
    ),
    title="LayerNorm kernel in Mojo, as a MAX custom op",
    import_timeout=60.0,
    default_timeout=300.0,  # CPU seconds: the first call of a kernel compiles its graph (a minute or two, cold)
    skeleton="steps/step_06/step_06.py",
    solution="solutions/solution_06/solution_06.py",
    add_arguments=add_arguments,
    notes=notes,
    after=speed,
)


# -- judging ---------------------------------------------------------------------------------------
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


# -- the checks ---------------------------------------------------------------------------------
@checklist.check("the Mojo package compiles (layer_norm.mojo)", timeout=300, always=True)
def package_compiles(learner):
    error = learner.probe(max_side.declare, 1e-5, during="compiling the Mojo package (declaring the op)")
    if error:
        package = Path(learner.path).parent
        raise Fail("The Mojo compiler says: " + compiler_message(error, package), blocks=NO_PACKAGE)
    return ""


@checklist.check("fast kernel, 64 x 768 (D a multiple of the SIMD width) matches the float64 oracle")
def matches_multiple_of_width(learner):
    return kernel_matches(learner, *case(1, 64, 768), 1e-5)


@checklist.check("fast kernel, 37 x 771 (D not a multiple of the SIMD width: the tail) matches the oracle")
def matches_with_tail(learner):
    return kernel_matches(learner, *case(2, 37, 771), 1e-5)


@checklist.check("fast kernel, a single row and an odd row count (1 x 771, 3 x 771)")
def few_rows(learner):
    kernel_matches(learner, *case(30, 3, 771), 1e-5)  # first: with three rows a missing one can be told apart
    return kernel_matches(learner, *case(3, 1, 771), 1e-5)


@checklist.check("epsilon is honoured (epsilon=10 shrinks the output as it should)")
def epsilon_honoured(learner):
    return kernel_matches(learner, *case(4, 5, 40), 10.0)


def large_mean_case(seed: int, d: int):
    """Rows around 1e4 with unit spread, gamma = 1, beta = 0: where E[x²] - E[x]² cancels in float32."""
    x = (1e4 + np.random.default_rng(seed).normal(size=(8, d))).astype(np.float32)
    return x, np.ones(d, np.float32), np.zeros(d, np.float32)


@checklist.check("numerically stable: float32 rows around 1e4 with unit spread")
def stable_large_mean(learner):
    x, gamma, beta = large_mean_case(5, 771)
    y, *_ = run_kernel(
        learner, max_side.eager, x, gamma, beta, 1e-5, during="calling mojo_layer_norm on rows around 1e4"
    )
    return judge_large_mean(y, x, gamma, beta)


def judge_large_mean(y, x, gamma, beta) -> str:
    values = getattr(y, "values", None)
    if isinstance(values, np.ndarray) and values.shape == x.shape and not np.all(np.isfinite(values)):
        raise Fail(
            "NaN or inf on rows around 1e4: the variance came out negative, the signature of E[x²] - E[x]² in "
            "float32. Take the mean first, then average (x - mean)² in a second pass."
        )
    y = expect_array(y, "mojo_layer_norm(x, gamma, beta)", kind="max", shape=x.shape)
    error = float(np.max(np.abs(y.astype(np.float64) - layernorm(x, gamma, beta, 1e-5))))
    if error > 2e-2:
        raise Fail(
            f"Max error {error:.2g} on rows around 1e4: E[x²] - E[x]² cancels catastrophically in float32. Take "
            "the mean first, then average (x - mean)² in a second pass over the row (or use Welford's update)."
        )
    return f"max error {error:.1e}"


# Runs after a TODO kernel too: the Python TODOs (forward, compile) show up first.
@checklist.check(
    "compiled Module with a symbolic batch and eps=0.5: one graph serves N=3 and N=50, and matches eager",
    slow=True,
    timeout=600,
    despite=(TODO_KERNEL,),
)
def compiled_module(learner):
    _, gamma, beta = case(6, 1, SPEED_SHAPE[1])
    xs = [case(60 + n, n, SPEED_SHAPE[1])[0] for n in (3, 50)]
    eps = COMPILED_EPS
    try:
        outputs, eager, _ = run_kernel(
            learner,
            max_side.compiled_kernel,
            SPEED_SHAPE[1],
            gamma,
            beta,
            eps,
            xs,
            during="compiling and running compile_mojo_layer_norm(768)",
        )
    except LearnerError as error:
        if re.search(r"expected .*shape \[Dim\(\d+\)", str(error)):
            raise Fail(
                "The compiled graph only takes one batch size: compile for a symbolic first dimension, "
                f'TensorType(DType.float32, ["batch", dim], device_ref). [{error}]'
            ) from None
        raise
    for x, y in zip(xs, outputs, strict=True):
        y = kernel_output(y, x, gamma, beta, eps, name=f"the compiled graph's output for N={x.shape[0]}")
        expect_close(
            y,
            layernorm(x, gamma, beta, eps),
            name=f"compiled output (N={x.shape[0]})",
            atol=ATOL,
            mistakes=kernel_mistakes(x, gamma, beta, eps),
        )
    eager = expect_array(eager, "mojo_layer_norm (eager)", kind="max", shape=xs[0].shape)
    difference = float(np.max(np.abs(outputs[0].values.astype(np.float64) - eager)))
    if difference > 1e-5:
        raise Fail(
            f"The compiled graph and the eager call differ by {difference:.2g} on the same input: does forward "
            "pass this module's weight, bias and eps to the op?"
        )
    return f"compiled vs eager: max difference {difference:.1e}"


@checklist.check("it is your kernel: the custom op runs and MAX's built-in layer_norm is never called")
def not_the_builtin(learner):
    run_kernel(learner, max_side.eager, *case(7, 2, 16), 1e-5, during="calling mojo_layer_norm")  # one call of its own
    kernel = Path(learner.path).parent / KERNEL_FILE
    if kernel.exists() and re.search(r"^\s*(from|import)\s+nn\b", kernel.read_text(errors="replace"), re.M):
        raise Fail(f"{KERNEL_FILE} imports MAX's kernel library (`nn`): write the loops yourself.")
    staged = learner.memo["staged"]
    if staged["builtin"]:
        raise Fail(
            "MAX's built-in layer_norm (F.layer_norm or ops.layer_norm) was staged while your code ran: call "
            "your custom op (mojo_layer_norm) instead."
        )
    if "layer_norm_fast" not in staged["custom"]:
        raise Fail(
            "The custom op `layer_norm_fast` was never staged: mojo_layer_norm and the compiled Module must go "
            'through layer_norm_op("fast", eps).'
        )
    return "custom op staged, no built-in LayerNorm"


# -- the GPU checks: the same kernel's GPU path, where MAX sees a GPU -------------------------------
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


def gpu_check(name: str, **options):
    """A check of the GPU path: skipped, saying why, where the GPU kernel cannot run (gpu_skip)."""
    return checklist.check(name, skip_if=gpu_skip, **options)


@gpu_check(
    "GPU: the kernel on the GPU matches the oracle at 64 x 768, 37 x 771, 1 x 771, 3 x 771, 5 x 1, 3 x 4099, "
    f"2 x 8192 and {GPU_MAX_GRID + 5} x 3"
)
def gpu_matches(learner):
    worst = max(gpu_matches_oracle(learner, *case(40 + i, n, d), 1e-5) for i, (n, d) in enumerate(GPU_SHAPES))
    return f"max error {worst:.1e} over {len(GPU_SHAPES)} shapes"


@gpu_check("GPU: numerically stable (rows around 1e4) and epsilon honoured (epsilon=10) on the GPU")
def gpu_stable(learner):
    for seed, d in ((5, 771), (8, 768)):  # one scalar row, one that takes vector loads
        x, gamma, beta = large_mean_case(seed, d)
        message = judge_large_mean(gpu_run(learner, x, gamma, beta, 1e-5), x, gamma, beta)
    gpu_matches_oracle(learner, *case(4, 5, 40), 10.0)
    return message


@gpu_check(
    "GPU: compile_mojo_layer_norm(768, device=the GPU) with eps=0.5 serves N=3 and N=50 and matches the oracle",
    slow=True,
    timeout=600,
)
def gpu_compiled(learner):
    _, gamma, beta = case(6, 1, 768)
    xs, eps = [case(60 + n, n, 768)[0] for n in (3, 50)], 0.5
    try:
        outputs = run_kernel(
            learner,
            max_side.compiled_kernel_on_gpu,
            getattr(learner.options, "device", "auto"),
            768,
            gamma,
            beta,
            eps,
            xs,
            during="compiling and running compile_mojo_layer_norm(768, device=the GPU)",
            gpu=True,
        )
    except LearnerError as error:
        if error.exc_type in ("NotImplementedError", "Fail"):
            raise
        raise Fail(
            f"compile_mojo_layer_norm(768, device=the GPU) failed ({str(error)[:300]}): move the module to the "
            'device, layer.to(device), and compile for TensorType(DType.float32, ["batch", dim], '
            "DeviceRef.from_device(device))."
        ) from None
    worst = 0.0
    for x, record in zip(xs, outputs, strict=True):
        name = f"the compiled graph's output for N={x.shape[0]}"
        if isinstance(record, TensorRecord) and not record.device.startswith("gpu"):
            raise Fail(
                f"{name} came back on {record.device}, not on the GPU: compile for the device you are given "
                "(layer.to(device), and DeviceRef.from_device(device) in the TensorType)."
            )
        y = kernel_output(record, x, gamma, beta, eps, name=name, diagnose=diagnose_gpu)
        expected = layernorm(x, gamma, beta, eps)
        expect_close(y, expected, name=name, atol=ATOL, mistakes=kernel_mistakes(x, gamma, beta, eps))
        worst = max(worst, float(np.max(np.abs(y.astype(np.float64) - expected))))
    return f"max error {worst:.1e}"
