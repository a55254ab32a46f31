"""Step 06 checklist: a LayerNorm kernel in Mojo, registered as a MAX custom op.

The step is a folder: a Mojo package (`layer_norm.mojo`) and Python glue (`step_06.py`). The CPU kernel
is judged first, called directly by the checker's harness (`kernel_harness`: built once per content,
in the background, called on guarded buffers within a time budget). Then the glue, in the learner's
process: the compiled Module (MAX graphs: the slow checks). The GPU checks (last) run where MAX sees a
GPU (`--device auto|gpu`), and are skipped, saying why, where it sees none.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tests.check.kit import NOT_IMPORTED, Checklist, Fail, LearnerError
from tests.check.kit.max_side import add_device_option
from tests.check.step_06 import judging, probes

GPU_SHAPES = ((64, 768), (37, 771), (1, 771), (3, 771), (5, 1), (3, 4099), (2, 8192), (judging.GPU_MAX_GRID + 5, 3))


def add_arguments(parser) -> None:
    add_device_option(
        parser, "where the GPU checks run (default auto: on the GPU when MAX sees one); the CPU checks always run"
    )


def notes(options) -> list[str]:
    return [
        judging.device_note(options),
        "Your kernel is compiled once per edit of the package (about ten seconds) and called directly; the",
        "compiled Module's check then compiles MAX graphs (tens of seconds after an edit, minutes the first time).",
    ]


def speed(learner, options, report) -> list[str]:
    """Your compiled graph against the built-in's (a note, not a check), after a full run that passed."""
    if not report.passed or getattr(options, "quick", False) or getattr(options, "only", None):
        return []
    return judging.speed_note(learner, judging.SPEED_SHAPE, judging.COMPILED_EPS)  # the compiled check's graph


checklist = Checklist(
    step="06",
    preload=(
        "max.experimental.tensor",
        "max.experimental.nn",
        "max.experimental.functional",
        probes.__name__,
    ),
    import_timeout=60.0,
    default_timeout=300.0,  # CPU seconds: a cold compile of the Module's graphs takes a minute or two
    code_timeout=20.0,  # CPU seconds per call outside MAX's compiles: an infinite loop stops there
    add_arguments=add_arguments,
    notes=notes,
    prepare=judging.start_harness_build,  # the kernel compiles while the glue is imported
    after=speed,
)
KERNEL_CHECK = {"despite": (NOT_IMPORTED,)}  # the kernel is judged without the glue: a broken step_06.py hides nothing


# -- the CPU kernel, called directly ----------------------------------------------------------------
@checklist.check("the Mojo package compiles (layer_norm.mojo)", always=True, **KERNEL_CHECK)
def package_compiles(learner):
    build = judging.harness_build(learner)
    if build.binary is None:
        package = Path(learner.path).parent
        if not build.in_package:
            raise Fail(
                "The checker calls your kernel as MAX does, LayerNormFast[epsilon].execute[target](output, x, gamma, "
                f"beta, ctx), and that call does not compile: {judging.compiler_message(build.errors, package)}. "
                "Keep the struct's name, its epsilon parameter and execute's signature as the skeleton has them.",
                blocks=judging.NO_PACKAGE,
            )
        raise Fail(
            "The Mojo compiler says: " + judging.compiler_message(build.errors, package), blocks=judging.NO_PACKAGE
        )
    return "compiled earlier: reused" if build.cached else f"compiled in {build.seconds:.1f} s"


@checklist.check(
    "memory: with guard values around every buffer (5 x 771), each row is read and written in place", **KERNEL_CHECK
)
def memory(learner):
    x, gamma, beta = judging.case(9, 5, 771)  # 5 rows: a last row, and overlaps a wrong row offset cannot hide
    try:
        judging.harness_output(learner, x, gamma, beta, 1e-5, guarded_reads=True)  # guards, canaries, NaN
    except Fail as failure:  # the later checks would meet it again, in results that vary with the threads
        raise Fail(str(failure), blocks=failure.blocks or judging.MEMORY_WRONG) from None
    return "nothing read or written outside the rows"


@checklist.check("threads: 16384 x 768, ten calls give the same bits every time (no race)", **KERNEL_CHECK)
def no_race(learner):
    try:
        return judging.race_free(learner)
    except Fail as failure:  # a race: every later result depends on the threads' timing
        raise Fail(str(failure), blocks=failure.blocks or judging.RACE) from None


@checklist.check("fast kernel, 64 x 768 (D a multiple of the SIMD width) matches the float64 oracle", **KERNEL_CHECK)
def matches_multiple_of_width(learner):
    return judging.kernel_matches(learner, *judging.case(1, 64, 768), 1e-5)


@checklist.check(
    "fast kernel, 37 x 771 (D not a multiple of the SIMD width: the tail) matches the oracle", **KERNEL_CHECK
)
def matches_with_tail(learner):
    return judging.kernel_matches(learner, *judging.case(2, 37, 771), 1e-5)


@checklist.check("fast kernel, a single row and an odd row count (1 x 771, 3 x 771)", **KERNEL_CHECK)
def few_rows(learner):
    judging.kernel_matches(
        learner, *judging.case(30, 3, 771), 1e-5
    )  # first: with three rows a missing one can be told apart
    return judging.kernel_matches(learner, *judging.case(3, 1, 771), 1e-5)


@checklist.check("epsilon is honoured (epsilon=10 shrinks the output as it should)", **KERNEL_CHECK)
def epsilon_honoured(learner):
    return judging.kernel_matches(learner, *judging.case(4, 5, 40), 10.0)


@checklist.check("numerically stable: float32 rows around 1e4 with unit spread", **KERNEL_CHECK)
def stable_large_mean(learner):
    x, gamma, beta = judging.large_mean_case(5, 771)
    judging.kernel_matches(learner, x - np.float32(1e4), gamma, beta, 1e-5)  # the same rows around 0: any other mistake
    return judging.kernel_large_mean(judging.harness_output(learner, x, gamma, beta, 1e-5), x, gamma, beta)


@checklist.check("it is your kernel: layer_norm.mojo imports none of MAX's kernels", **KERNEL_CHECK)
def own_kernel(learner):
    kernel = Path(learner.path).parent / judging.KERNEL_FILE
    if kernel.exists() and re.search(r"^\s*(from|import)\s+nn\b", kernel.read_text(errors="replace"), re.M):
        raise Fail(f"{judging.KERNEL_FILE} imports MAX's kernel library (`nn`): write the loops yourself.")
    return "no `nn` import"


# -- the Python glue, in MAX: the compiled Module (its graphs compile: slow) -----------------------------
# Runs after a TODO kernel too: the Python TODOs (forward, compile) show up first.
@checklist.check(
    "compiled Module with a symbolic batch and eps=0.5: one graph serves N=3 and N=50, and matches the oracle",
    slow=True,
    timeout=600,
    despite=(judging.TODO_KERNEL,),
)
def compiled_module(learner):
    outputs, xs, gamma, beta, eps = judging.compiled_run(learner)
    try:
        return f"max error {judging.compiled_outputs_match(outputs, xs, gamma, beta, eps):.1e}"
    except Fail:
        if not judging.kernel_right(learner, xs[0], gamma, beta, eps):
            raise
        raise Fail(
            "Your kernel is right on this very input when the checker calls it, but the compiled graph is not: the "
            "Python glue is wrong. Does forward pass this module's weight, bias and eps to the op, unchanged, and "
            "does compile_mojo_layer_norm give the module the weight and bias it was given?"
        ) from None


@checklist.check(
    "your custom op is what runs: the compiled Module stages layer_norm_fast and never MAX's built-in layer_norm",
    slow=True,
)
def not_the_builtin(learner):
    try:
        judging.compiled_run(learner)  # built by the check before, unless --only left it out
    except (Fail, LearnerError):
        if "staged" not in learner.memo:
            raise Fail(
                "Not judged: the compiled Module did not build (see the compiled Module's check).",
                cause="the compiled Module did not build",
            ) from None
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
    """A check of the GPU path: skipped, saying why, where the GPU kernel cannot run (judging.gpu_skip)."""
    return checklist.check(name, skip_if=judging.gpu_skip, **options)


@gpu_check(
    "GPU: the kernel on the GPU matches the oracle at 64 x 768, 37 x 771, 1 x 771, 3 x 771, 5 x 1, 3 x 4099, "
    f"2 x 8192 and {judging.GPU_MAX_GRID + 5} x 3"
)
def gpu_matches(learner):
    worst = max(
        judging.gpu_matches_oracle(learner, *judging.case(40 + i, n, d), 1e-5) for i, (n, d) in enumerate(GPU_SHAPES)
    )
    return f"max error {worst:.1e} over {len(GPU_SHAPES)} shapes"


@gpu_check("GPU: numerically stable (rows around 1e4) and epsilon honoured (epsilon=10) on the GPU")
def gpu_stable(learner):
    for seed, d in ((5, 771), (8, 768)):  # one scalar row, one that takes vector loads
        x, gamma, beta = judging.large_mean_case(seed, d)
        message = judging.kernel_large_mean(judging.gpu_run(learner, x, gamma, beta, 1e-5), x, gamma, beta)
    judging.gpu_matches_oracle(learner, *judging.case(4, 5, 40), 10.0)
    return message


@gpu_check(
    "GPU: compile_mojo_layer_norm(768, device=the GPU) with eps=0.5 serves N=3 and N=50 and matches the oracle",
    slow=True,
    timeout=600,
)
def gpu_compiled(learner):
    _, gamma, beta = judging.case(6, 1, judging.SPEED_SHAPE[1])
    xs, eps = [judging.case(60 + n, n, judging.SPEED_SHAPE[1])[0] for n in (3, 50)], judging.COMPILED_EPS
    try:
        outputs = judging.run_kernel(
            learner,
            probes.compiled_kernel_on_gpu,
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
    return f"max error {judging.compiled_outputs_match(outputs, xs, gamma, beta, eps, gpu=True):.1e}"
