"""Step 06 checklist: a LayerNorm kernel in Mojo, registered as a MAX custom op.

The learner's step is a folder: a Mojo package (`layer_norm.mojo`) plus Python glue
(`step_06.py`). The checks run the glue in the learner's process; it compiles the package.
Every kernel output is judged against the float64 oracle here, in the judge's process.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import numpy as np

from tests.check.engine import REPO_ROOT, Checklist, Fail
from tests.check.judge import Mistake, expect_array, expect_close, layernorm, random_inputs
from tests.check.sandbox import LearnerError


def _add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="skip the two checks that compile whole graphs (the compiled Module, the speed)")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the checks whose name contains TEXT (the package is always compiled)")


def _notes(options) -> list[str]:
    return [
        "The first run compiles your Mojo package and the MAX kernels (minutes on a slow machine);",
        "after each edit of layer_norm.mojo the kernel graphs compile again (tens of seconds).",
    ]


checklist = Checklist(
    step="06",
    title="LayerNorm kernel in Mojo, as a MAX custom op",
    import_timeout=60.0,
    default_timeout=600.0,  # a cold compile of one kernel graph can take minutes on a busy machine
    skeleton="steps/step_06/step_06.py",
    solution="solutions/solution_06/solution_06.py",
    add_arguments=_add_arguments,
    notes=_notes,
)

KERNEL_FILE = "layer_norm.mojo"
FAST = "fast"
SPEED_SHAPE = (4096, 768)
ATOL = 1e-4  # float32 kernel against the float64 oracle; the classic mistakes are far larger
SIMD_WIDTHS = (4, 8, 16, 32, 64)  # the vector widths a tail bug can be tied to
TODO_BLOCK = "the fast kernel is still a TODO (see above)."


# -- the learner's process (probes; MAX is imported there only) -------------------------------
_GRAPHS: dict = {}  # compiled graphs kept across checks: compiling is the slow part


class _Spy:
    """Counts graph ops staged while the learner's code runs: the built-in LayerNorm and custom ops."""

    def __init__(self):
        self.builtin = 0
        self.custom: list[str] = []

    def __enter__(self):
        from max._core.dialects import mo
        from max.graph import Graph, ops

        self._graph, self._ops = Graph, ops
        self._add, self._custom = Graph._add_op_generated, ops.custom
        spy = self

        def add_op(graph, op_type, *args, **kwargs):
            if op_type is mo.ReduceLayerNormOp:
                spy.builtin += 1
            return spy._add(graph, op_type, *args, **kwargs)

        def custom(name, *args, **kwargs):
            spy.custom.append(str(name))
            return spy._custom(name, *args, **kwargs)

        Graph._add_op_generated, ops.custom = add_op, custom
        return self

    def __exit__(self, *exc):
        self._graph._add_op_generated, self._ops.custom = self._add, self._custom

    def record(self) -> dict:
        return {"builtin": self.builtin, "custom": sorted(set(self.custom))}


def _to_numpy(value):
    """A MAX tensor as a NumPy array; anything else is sent back as it is (the judge names it)."""
    from max.experimental.tensor import Tensor

    if isinstance(value, Tensor):
        return np.array(np.from_dlpack(value.to(_cpu())))
    return value


def _cpu():
    from max.driver import CPU

    return CPU()


def _declare(learner_module, eps):
    """Declares the fast op: compiles the package. A compiler error comes back as text."""
    from mojo.paths import MojoCompilationError

    try:
        learner_module.layer_norm_op(FAST, eps)
    except MojoCompilationError as error:
        return {"compile_error": error.stderr or str(error)}
    return {}


def _eager(learner_module, x, gamma, beta, eps):
    from max.experimental.tensor import Tensor

    with _Spy() as spy:
        y = learner_module.mojo_layer_norm(Tensor.from_dlpack(x), Tensor.from_dlpack(gamma),
                                           Tensor.from_dlpack(beta), eps=eps, kernel=FAST)
        y = _to_numpy(y)
    return y, spy.record()


def _compiled(learner_module, dim, gamma, beta, batches, seed):
    """Compiles the learner's graph once (cached) and runs it on several batch sizes, plus eager."""
    from max.experimental.tensor import Tensor

    rng = np.random.default_rng(seed)
    xs = [(rng.normal(size=(n, dim)) * 2 + rng.normal(size=(n, 1))).astype(np.float32) for n in batches]
    with _Spy() as spy:
        key = ("learner", dim)
        if key not in _GRAPHS:
            _GRAPHS[key] = learner_module.compile_mojo_layer_norm(dim, kernel=FAST, eps=1e-5,
                                                                  weight=gamma, bias=beta)
        run = _GRAPHS[key]
        outputs = [_to_numpy(run(Tensor.from_dlpack(x))) for x in xs]
        eager = _to_numpy(learner_module.mojo_layer_norm(
            Tensor.from_dlpack(xs[0]), Tensor.from_dlpack(gamma), Tensor.from_dlpack(beta), eps=1e-5,
            kernel=FAST))
    return xs, outputs, eager, spy.record()


def _builtin_graph(dim):
    """MAX's own LayerNorm (F.layer_norm) in a compiled graph with a symbolic batch: the yardstick."""
    from max.dtype import DType
    from max.experimental import functional as F
    from max.experimental.nn import Module
    from max.experimental.tensor import Tensor, TensorType
    from max.graph import DeviceRef

    class BuiltinLayerNorm(Module):
        def __init__(self):
            super().__init__()
            self.weight = Tensor.ones([dim], dtype=DType.float32, device=_cpu())
            self.bias = Tensor.zeros([dim], dtype=DType.float32, device=_cpu())

        def forward(self, x):
            return F.layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=1e-5)

    return BuiltinLayerNorm().compile(TensorType(DType.float32, ["batch", dim], DeviceRef.CPU()))


def _speed(learner_module, rows, dim, repeats):
    """Median seconds per call of the learner's compiled graph and of the built-in's, interleaved."""
    from max.experimental.tensor import Tensor

    rng = np.random.default_rng(0)
    gamma, beta = np.ones(dim, np.float32), np.zeros(dim, np.float32)
    key = ("learner", dim)
    if key not in _GRAPHS:
        _GRAPHS[key] = learner_module.compile_mojo_layer_norm(dim, kernel=FAST, eps=1e-5,
                                                              weight=gamma, bias=beta)
    if ("builtin", dim) not in _GRAPHS:
        _GRAPHS[("builtin", dim)] = _builtin_graph(dim)
    graphs = {"yours": _GRAPHS[key], "builtin": _GRAPHS[("builtin", dim)]}
    x = Tensor.from_dlpack(rng.normal(size=(rows, dim)).astype(np.float32))
    times = {name: [] for name in graphs}
    for run in graphs.values():  # warm-up: the first calls allocate
        for _ in range(3):
            run(x)
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits both alike
        for name, run in graphs.items():
            start = time.perf_counter()
            run(x)  # on the CPU the call returns when the output is written
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(samples)) for name, samples in times.items()}


# -- judging (this process) --------------------------------------------------------------------
def _state(learner) -> dict:
    """Per-run memory: what blocks later checks, what the spy saw."""
    if not hasattr(learner, "_step06"):
        learner._step06 = {"blocked": None, "builtin": 0, "custom": set()}
    return learner._step06


def _kernel_path(learner) -> Path:
    return Path(learner.path).parent / KERNEL_FILE


def compiler_message(text: str, package: Path) -> str:
    """The compiler's own errors, trimmed to `file:line:col: error: ...` and the offending line."""
    lines = text.splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        if re.search(r"\.mojo:\d+:\d+: error:", line):
            where, _, message = line.partition(": error:")
            where = _shorter_path(where, package)
            source = lines[i + 1].strip() if i + 1 < len(lines) and "^" not in lines[i + 1] else ""
            kept.append(f"{where}: error:{message}" + (f" [`{source}`]" if source else ""))
            if len(kept) == 2:
                break
    if not kept:
        useful = [line for line in lines if line.strip() and "Crashpad" not in line]
        kept = useful[-3:]
    return " | ".join(kept)


def _shorter_path(where: str, package: Path) -> str:
    """`/abs/steps/step_06/layer_norm.mojo:31:24` -> `steps/step_06/layer_norm.mojo:31:24`."""
    path, _, position = where.partition(".mojo:")
    try:
        shown = str(Path(path + ".mojo").resolve().relative_to(REPO_ROOT))
    except ValueError:
        shown = Path(path).name + ".mojo"
    return f"{shown}:{position}"


def kernel_error(error: LearnerError) -> str | None:
    """The message the Mojo kernel raised, out of MAX's wrapping, or None if it is not one."""
    match = re.search(r'An error occurred in kernel named "[^"]*":\s*(.+?)\s*(?:Fusion info:|$)', str(error), re.S)
    return match.group(1).strip() if match else None


def run_kernel(learner, probe, *args, during: str, after_todo: bool = False):
    """Runs a probe that calls the fast kernel, turning kernel failures into hints.

    Once the package does not compile or the kernel is a TODO, the later checks say so instead of
    waiting for the same failure again.
    """
    state = _state(learner)
    if state["blocked"] and not (after_todo and state["blocked"] == TODO_BLOCK):
        raise Fail(f"Not run: {state['blocked']}")
    try:
        result = learner.probe(probe, *args, during=during)
    except LearnerError as error:
        raised = kernel_error(error)
        if raised is None:
            if "no kernel named" in str(error):
                raise Fail(f"MAX finds no kernel named `layer_norm_fast` in the package: keep "
                           f"`@extensibility.register(\"layer_norm_fast\")` above the struct. [{error}]") from None
            raise
        if "TODO" in raised:
            state["blocked"] = TODO_BLOCK
            raise Fail(f"Still a TODO: the fast kernel raises \"{raised}\". Write `layer_norm_fast` in "
                       f"{KERNEL_FILE}, replacing the `raise`.") from None
        raise Fail(f"The kernel raised an error while {during}: {raised}") from None
    if isinstance(result, tuple) and len(result) and isinstance(result[-1], dict) and "builtin" in result[-1]:
        state["builtin"] += result[-1]["builtin"]
        state["custom"].update(result[-1]["custom"])
    return result


def eager_output(learner, x, gamma, beta, eps) -> np.ndarray:
    y, _spy = run_kernel(learner, _eager, x, gamma, beta, eps,
                         during=f"calling mojo_layer_norm on a {x.shape[0]}x{x.shape[1]} input")
    if isinstance(y, np.ndarray) and y.shape == x.shape and np.issubdtype(y.dtype, np.floating):
        diagnose_tail(y, x, gamma, beta, eps)  # before the NaN check: a skipped tail holds garbage
    if isinstance(y, np.ndarray) and y.dtype != np.float32:
        raise Fail(f"mojo_layer_norm returned {y.dtype}; the kernel works in float32 and so should the result.")
    return expect_array(y, "mojo_layer_norm(x, gamma, beta)", shape=x.shape)


def kernel_mistakes(x, gamma, beta, eps) -> list[Mistake]:
    """The outputs of the classic wrong kernels, each with the hint that names it."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    mistakes = [
        Mistake("The variance looks unbiased (divided by D - 1); LayerNorm divides by D",
                lambda: (x - mean) / np.sqrt(var * d / max(d - 1, 1) + eps) * gamma + beta),
        Mistake("epsilon looks outside the square root: rstd = 1 / sqrt(var + epsilon)",
                lambda: (x - mean) / (np.sqrt(var) + eps) * gamma + beta),
        Mistake("gamma and beta are swapped: gamma scales (multiplies), beta shifts (adds)",
                lambda: xhat * beta + gamma),
        Mistake("gamma and beta are not applied: y = xhat * gamma + beta", lambda: xhat),
        Mistake("The mean is not subtracted: xhat = (x - mean) * rstd", lambda: x / np.sqrt(var + eps) * gamma + beta),
        Mistake("Multiplied by sqrt(var + epsilon) instead of dividing: rstd = 1 / sqrt(var + epsilon)",
                lambda: (x - mean) * np.sqrt(var + eps) * gamma + beta),
    ]
    if n > 1:
        good = layernorm(x, gamma, beta, eps)
        mistakes += [
            Mistake("Each row's result lands in the wrong row: row r must read and write at offset "
                    "r * width (check the unsafe_offset lines)", lambda: np.roll(good, 1, axis=0)),
            Mistake("Each row's result lands in the wrong row: row r must read and write at offset "
                    "r * width (check the unsafe_offset lines)", lambda: np.roll(good, -1, axis=0)),
            Mistake("Every row got row 0's result: the row index is not used where x and y are read "
                    "and written (x_ptr.unsafe_offset(row * width))", lambda: np.repeat(good[:1], n, axis=0)),
        ]
    return mistakes


def _stats_from_head(x, head, eps, divisor):
    """xhat from statistics that sum only the first `head` columns, divided by `divisor`."""
    mean = x[:, :head].sum(axis=1, keepdims=True) / divisor
    var = ((x[:, :head] - mean) ** 2).sum(axis=1, keepdims=True) / divisor
    return (x - mean) / np.sqrt(var + eps)


def diagnose_tail(y, x, gamma, beta, eps) -> None:
    """Fail naming the tail when D is not a multiple of a SIMD width and the tail columns were skipped."""
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    expected = layernorm(x, gamma, beta, eps)
    d = expected.shape[1]
    for w in SIMD_WIDTHS:
        tail = d % w
        head = d - tail
        if not tail or head == 0:
            continue
        if np.allclose(y[:, :head], expected[:, :head], atol=ATOL) and not np.allclose(
                y[:, head:], expected[:, head:], atol=ATOL):
            raise Fail(f"Only the last {tail} columns are wrong (D = {d} is not a multiple of the SIMD width): "
                       f"the tail is dropped. After the vector loop, normalise columns {head}..{d - 1} one at a time.")
        for divisor in (head, d):
            skipped = _stats_from_head(x, head, eps, divisor) * gamma + beta
            if np.allclose(y[:, :head], skipped[:, :head], atol=ATOL):
                output = "" if np.allclose(y[:, head:], skipped[:, head:], atol=ATOL) else " and out of the output"
                raise Fail(f"The tail is left out of the statistics{output}: the sums cover only the first {head} "
                           f"of {d} columns (whole vectors only). After each vector loop, add the last {tail} "
                           "columns one at a time, and divide by D.")


def kernel_matches(learner, x, gamma, beta, eps) -> str:
    y = eager_output(learner, x, gamma, beta, eps)
    return expect_close(y, layernorm(x, gamma, beta, eps), name="y", atol=ATOL,
                        mistakes=kernel_mistakes(x, gamma, beta, eps))


def _inputs(seed, n, d):
    x, gamma, beta = random_inputs(seed=seed, n=n, d=d, dtype=np.float32)
    return x, gamma, beta


def check(name: str, *, whole_graph: bool = False, always: bool = False, timeout: float | None = None):
    """`checklist.check`, honouring --only (run a subset) and --quick (skip whole-graph compiles)."""

    def register(function):
        @functools.wraps(function)
        def gated(learner):
            only = getattr(learner.options, "only", None)
            if only and not always and only.lower() not in name.lower():
                raise Fail(f"Not run: --only {only!r} selects other checks.")
            if whole_graph and getattr(learner.options, "quick", False):
                raise Fail("Not run: --quick skips the checks that compile a whole graph; run without it "
                           "before moving on.")
            return function(learner)

        return checklist.check(name, timeout=timeout)(gated)

    return register


# -- the checks ---------------------------------------------------------------------------------
@check("the Mojo package compiles (layer_norm.mojo)", always=True, timeout=300)
def package_compiles(learner):
    result = learner.probe(_declare, 1e-5, during="compiling the Mojo package (declaring the op)")
    if isinstance(result, dict) and "compile_error" in result:
        _state(learner)["blocked"] = "the Mojo package does not compile (see above)."
        raise Fail("The Mojo compiler says: " + compiler_message(result["compile_error"], _kernel_path(learner).parent))
    return ""


@check("fast kernel, 64 x 768 (D a multiple of the SIMD width) matches the float64 oracle")
def matches_multiple_of_width(learner):
    return kernel_matches(learner, *_inputs(1, 64, 768), 1e-5)


@check("fast kernel, 37 x 771 (D not a multiple of the SIMD width: the tail) matches the oracle")
def matches_with_tail(learner):
    return kernel_matches(learner, *_inputs(2, 37, 771), 1e-5)


@check("fast kernel, a single row (1 x 771)")
def single_row(learner):
    return kernel_matches(learner, *_inputs(3, 1, 771), 1e-5)


@check("epsilon is honoured (epsilon=10 shrinks the output as it should)")
def epsilon_honoured(learner):
    x, gamma, beta = _inputs(4, 5, 40)
    y = eager_output(learner, x, gamma, beta, 10.0)
    if np.allclose(y, layernorm(x, gamma, beta, 1e-5), atol=ATOL):
        raise Fail("epsilon is ignored: the output is the one for 1e-5. Use the struct's parameter, "
                   "`Self.epsilon`, in rstd = 1 / sqrt(var + Self.epsilon).")
    if np.allclose(y, layernorm(x, gamma, beta, 0.0), atol=ATOL):
        raise Fail("epsilon is not added: rstd = 1 / sqrt(var + Self.epsilon).")
    return expect_close(y, layernorm(x, gamma, beta, 10.0), name="y", atol=ATOL,
                        mistakes=kernel_mistakes(x, gamma, beta, 10.0))


@check("numerically stable: float32 rows around 1e4 with unit spread")
def stable_large_mean(learner):
    rng = np.random.default_rng(5)
    x = (1e4 + rng.normal(size=(8, 771))).astype(np.float32)
    gamma, beta = np.ones(771, np.float32), np.zeros(771, np.float32)
    y, _spy = run_kernel(learner, _eager, x, gamma, beta, 1e-5, during="calling mojo_layer_norm on rows around 1e4")
    if isinstance(y, np.ndarray) and y.shape == x.shape and not np.all(np.isfinite(y)):
        raise Fail("NaN or inf on rows around 1e4: the variance came out negative, the signature of "
                   "E[x²] - E[x]² in float32. Take the mean first, then average (x - mean)² in a second pass.")
    y = expect_array(y, "mojo_layer_norm(x, gamma, beta)", shape=x.shape)
    error = float(np.max(np.abs(np.asarray(y, np.float64) - layernorm(x, gamma, beta, 1e-5))))
    if error > 2e-2:
        raise Fail(f"Max error {error:.2g} on rows around 1e4: E[x²] - E[x]² cancels catastrophically in "
                   "float32. Take the mean first, then average (x - mean)² in a second pass over the row "
                   "(or use Welford's update).")
    return f"max error {error:.1e}"


@check("compiled Module with a symbolic batch: one graph serves N=3 and N=50, and matches eager",
       whole_graph=True)
def compiled_module(learner):
    d = 768
    _, gamma, beta = _inputs(6, 1, d)
    # Runs after a TODO kernel too: the Python TODOs (forward, compile) show up first.
    try:
        xs, outputs, eager, _spy = run_kernel(learner, _compiled, d, gamma, beta, (3, 50), 6, after_todo=True,
                                              during="compiling and running compile_mojo_layer_norm(768)")
    except LearnerError as error:
        if re.search(r"expected .*shape \[Dim\(\d+\)", str(error)):
            raise Fail("The compiled graph only takes one batch size: compile for a symbolic first dimension, "
                       f"TensorType(DType.float32, [\"batch\", dim], device_ref). [{error}]") from None
        raise
    for x, y in zip(xs, outputs, strict=True):
        if isinstance(y, np.ndarray) and y.shape == x.shape and np.issubdtype(y.dtype, np.floating):
            diagnose_tail(y, x, gamma, beta, 1e-5)
        y = expect_array(y, f"the compiled graph's output for N={x.shape[0]}", shape=x.shape,
                         shape_hint="Compile for TensorType(DType.float32, [\"batch\", dim], ...): "
                                    "a symbolic first dimension.")
        expect_close(y, layernorm(x, gamma, beta, 1e-5), name=f"compiled output (N={x.shape[0]})", atol=ATOL,
                     mistakes=kernel_mistakes(x, gamma, beta, 1e-5))
    eager = expect_array(eager, "mojo_layer_norm (eager)", shape=xs[0].shape)
    difference = float(np.max(np.abs(np.asarray(outputs[0], np.float64) - eager)))
    if difference > 1e-5:
        raise Fail(f"The compiled graph and the eager call differ by {difference:.2g} on the same input: "
                   "does forward pass this module's weight, bias and eps to the op?")
    return f"compiled vs eager: max difference {difference:.1e}"


@check("it is your kernel: the custom op runs and MAX's built-in layer_norm is never called")
def not_the_builtin(learner):
    state = _state(learner)
    if state["blocked"]:
        raise Fail(f"Not run: {state['blocked']}")
    # One call of its own, so the verdict does not depend on which other checks ran (--only).
    x, gamma, beta = _inputs(7, 2, 16)
    run_kernel(learner, _eager, x, gamma, beta, 1e-5, during="calling mojo_layer_norm")
    source = _kernel_path(learner).read_text(errors="replace") if _kernel_path(learner).exists() else ""
    if re.search(r"^\s*(from|import)\s+nn\b", source, re.M):
        raise Fail(f"{KERNEL_FILE} imports MAX's kernel library (`nn`): write the loops yourself.")
    if state["builtin"]:
        raise Fail("MAX's built-in layer_norm (F.layer_norm or ops.layer_norm) was staged while your code "
                   "ran: call your custom op (mojo_layer_norm) instead.")
    if "layer_norm_fast" not in state["custom"]:
        raise Fail("The custom op `layer_norm_fast` was never staged: mojo_layer_norm and the compiled "
                   "Module must go through layer_norm_op(\"fast\", eps).")
    return "custom op staged, no built-in LayerNorm"


@check(f"speed (reported, not judged): {SPEED_SHAPE[0]} x {SPEED_SHAPE[1]} in a compiled graph, "
       "yours vs the built-in", whole_graph=True)
def speed(learner):
    rows, dim = SPEED_SHAPE
    times = run_kernel(learner, _speed, rows, dim, 25,
                       during=f"timing compiled graphs on {rows}x{dim}")
    if not (isinstance(times, dict) and {"yours", "builtin"} <= set(times)):
        raise Fail(f"The timing returned {times!r}.")
    yours, builtin = times["yours"], times["builtin"]
    ratio = yours / builtin
    line = f"yours {yours * 1e3:.2f} ms, built-in {builtin * 1e3:.2f} ms, median of 25"
    if ratio <= 1.5:
        return f"{ratio:.1f}× the built-in's time: {line}"
    return (f"{ratio:.0f}× slower than the built-in — vectorise the inner loops (SIMD) and parallelize "
            f"over rows: {line}")
