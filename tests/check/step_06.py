"""Step 06 checklist: a LayerNorm kernel in Mojo, registered as a MAX custom op.

The learner's step is a folder: a Mojo package (`layer_norm.mojo`) plus Python glue (`step_06.py`).
The checks run the glue in the learner's process; it compiles the package. Every kernel output is
judged against the float64 oracle here. The CPU checks always run on the CPU; the GPU checks (last)
run where MAX sees a GPU (`--device auto|gpu`), and are skipped, saying why, where it sees none.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tests.check.kit import Checklist, Fail, LearnerError, expect_array, layernorm, max_side
from tests.check.kit.kernels import (
    GPU_MAX_GRID,
    KERNEL_FILE,
    NO_PACKAGE,
    TODO_KERNEL,
    case,
    compiled_outputs_match,
    compiler_message,
    device_note,
    gpu_matches_oracle,
    gpu_run,
    gpu_skip,
    kernel_large_mean,
    kernel_matches,
    large_mean_case,
    run_kernel,
    speed_note,
)

SPEED_SHAPE = (4096, 768)
COMPILED_EPS = 0.5  # the compiled-Module check's eps (not the default: a forward that drops self.eps shows)
GPU_SHAPES = ((64, 768), (37, 771), (1, 771), (3, 771), (5, 1), (3, 4099), (2, 8192), (GPU_MAX_GRID + 5, 3))


def add_arguments(parser) -> None:
    max_side.add_device_option(
        parser, "where the GPU checks run (default auto: on the GPU when MAX sees one); the CPU checks always run"
    )


def notes(options) -> list[str]:
    return [
        device_note(options),
        "The first run compiles your Mojo package and the MAX kernels (minutes on a slow machine);",
        "after each edit of layer_norm.mojo the kernel graphs compile again (tens of seconds).",
    ]


def speed(learner, options, report) -> list[str]:
    """Your compiled graph against the built-in's (a note, not a check), after a full run that passed."""
    if not report.passed or getattr(options, "quick", False) or getattr(options, "only", None):
        return []
    return speed_note(learner, SPEED_SHAPE, COMPILED_EPS)  # the compiled check's graph: no new compile


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
    code_timeout=20.0,  # CPU seconds per call outside MAX's compiles: an infinite loop stops there
    skeleton="steps/step_06/step_06.py",
    solution="solutions/solution_06/solution_06.py",
    add_arguments=add_arguments,
    notes=notes,
    after=speed,
)


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


@checklist.check("numerically stable: float32 rows around 1e4 with unit spread")
def stable_large_mean(learner):
    x, gamma, beta = large_mean_case(5, 771)
    kernel_matches(learner, x - np.float32(1e4), gamma, beta, 1e-5)  # the same rows around 0: any other mistake
    y, *_ = run_kernel(
        learner, max_side.eager, x, gamma, beta, 1e-5, during="calling mojo_layer_norm on rows around 1e4"
    )
    return kernel_large_mean(y, x, gamma, beta)


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
    glue = (
        "does forward pass this module's weight, bias and eps to the op, and does compile_mojo_layer_norm give "
        "the module the weight and bias it was given?"
    )
    try:  # the first input is also the eager call's: the learner's kernel on these very weights
        compiled_outputs_match(outputs[:1], xs[:1], gamma, beta, eps)
    except Fail:
        right = getattr(eager, "values", None)
        if isinstance(right, np.ndarray) and right.shape == xs[0].shape:
            if np.allclose(right, layernorm(xs[0], gamma, beta, eps), atol=1e-4):
                raise Fail(f"The eager call is right, the compiled graph is not: the kernel is fine; {glue}") from None
        raise
    compiled_outputs_match(outputs[1:], xs[1:], gamma, beta, eps)
    eager = expect_array(eager, "mojo_layer_norm (eager)", kind="max", shape=xs[0].shape)
    difference = float(np.max(np.abs(outputs[0].values.astype(np.float64) - eager)))
    if difference > 1e-5:
        raise Fail(f"The compiled graph and the eager call differ by {difference:.2g} on the same input: {glue}")
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
        message = kernel_large_mean(gpu_run(learner, x, gamma, beta, 1e-5), x, gamma, beta)
    gpu_matches_oracle(learner, *case(4, 5, 40), 10.0)
    return message


@gpu_check(
    "GPU: compile_mojo_layer_norm(768, device=the GPU) with eps=0.5 serves N=3 and N=50 and matches the oracle",
    slow=True,
    timeout=600,
)
def gpu_compiled(learner):
    _, gamma, beta = case(6, 1, SPEED_SHAPE[1])
    xs, eps = [case(60 + n, n, SPEED_SHAPE[1])[0] for n in (3, 50)], COMPILED_EPS
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
    return f"max error {compiled_outputs_match(outputs, xs, gamma, beta, eps, gpu=True):.1e}"
