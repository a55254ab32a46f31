"""Step 03 checklist: LayerNorm as a Modular MAX module.

The worked example's twelve lines come first, each verified by running the learner's code; then
2-D/3-D inputs, the from-scratch composition and the compiled graph. Every check reuses one
feature size and float32: MAX compiles a kernel the first time it meets an op (about 12 s each on
a small machine), so the eager kernels a LayerNorm meets are compiled together, once
(`max_side.ready_for_layer_norm`), and the only other graph compiled is the learner's.
"""

from __future__ import annotations

import importlib.metadata
from contextlib import contextmanager

import numpy as np

from tests.check.kit import (
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
    representable,
    tolerance,
    type_name,
)

EXPECTED_MAX = "26.7.0"  # the pin in pyproject.toml; the step is written against this API
DIM = max_side.DIM
EAGER_TIMEOUT = 180.0  # a check that may meet an op for the first time compiles its kernel
GRAPH_TIMEOUT = 240.0  # a graph compile, cold, on a busy two-core machine
FIXES = {  # the catalogued mistakes of a module around F.layer_norm, and how to fix each
    "eps-ignored": "epsilon looks hard-coded. Pass epsilon=self.eps to F.layer_norm",
    "swapped": "pass gamma=self.weight, beta=self.bias",
    "no-affine": "pass gamma=self.weight and beta=self.bias to F.layer_norm (not fresh ones and zeros)",
    "no-beta": "pass beta=self.bias",
    "no-gamma": "pass gamma=self.weight",
}
SCRATCH_FIXES = {  # ... and of a composition of MAX primitives
    "eps-ignored": "use the `eps` argument, not a constant",
    "unbiased": "F.mean((x - mean) * (x - mean), axis=-1) divides by dim",
    "eps-outside": "use F.rsqrt(var + eps), not 1 / (F.sqrt(var) + eps)",
    "batch-axis": "take the mean and variance over the last axis (axis=-1, the features), not axis=0",
    "whole": "take them per row, with axis=-1",
    "no-affine": "return xhat * gamma + beta",
    "swapped": "",
    "beta-first": "compute xhat * gamma + beta",
    "by-variance": "use F.rsqrt(var + eps)",
    "not-centred": "xhat = (x - mean) * F.rsqrt(var + eps)",
    "times-std": "use F.rsqrt(var + eps) (1/sqrt), or divide by F.sqrt(var + eps)",
}


def installed_max_version() -> str | None:
    """The installed MAX's version, read from package metadata (importing max takes seconds)."""
    try:
        return importlib.metadata.version("max")
    except importlib.metadata.PackageNotFoundError:
        return None


def notes(options) -> list[str]:
    installed, lines = installed_max_version(), []
    if installed is None:
        lines.append(
            f"⚠️  MAX is not installed here; this tutorial expects max=={EXPECTED_MAX} "
            "(`make s03` or `pixi run s03` installs it)."
        )
    elif installed != EXPECTED_MAX:
        lines.append(
            f"⚠️  MAX {installed} is installed; this tutorial expects max=={EXPECTED_MAX}, and the MAX API "
            "moves between releases."
        )
    return lines + [
        "MAX compiles its kernels on first use: the first run takes about half a minute, later runs take seconds."
    ]


def add_arguments(parser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="where MAX runs the checks (default auto: an accelerator when MAX sees one)",
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the module's dtype (default auto: MAX's default on the device, float32 on a CPU, bfloat16 on a GPU)",
    )


def after(learner, options, report) -> list[str]:
    try:
        where = learner.probe(max_side.device_label, options.device, during="reading the device")
        dtype = dtype_of(learner)
    except (LearnerError, Fail):
        return []
    return [f"Ran on {where}." if dtype == "float32" else f"Ran on {where}, in {dtype}."]


checklist = Checklist(
    step="03",
    preload=(
        "max.experimental.tensor",
        "max.experimental.nn",
        "max.experimental.functional",
        "tests.check.kit.max_side",
    ),
    title="LayerNorm as a MAX module",
    import_timeout=180.0,
    default_timeout=60.0,
    add_arguments=add_arguments,
    notes=notes,
    after=after,
    import_hints={"module_v3": max_side.MODULE_HINT},
)


# -- judging --------------------------------------------------------------------------------------
def probe(learner, function, *args, during: str, **kwargs):
    dtype = getattr(learner.options, "dtype", "auto")
    return learner.probe(function, learner.options.device, *args, during=during, dtype=dtype, **kwargs)


# MAX creates tensors in float32 on a CPU and in bfloat16 on a GPU, unless told otherwise; the checks run the
# module in that dtype (or --dtype's), feed it inputs that dtype holds exactly, and judge it to that precision.
DTYPE_DEFAULT_ON = {
    "float32": "the default dtype on CPU",
    "bfloat16": "MAX's default dtype on a GPU, which Tensor.ones([dim]) without a dtype follows",
}


def dtype_of(learner) -> str:
    """The dtype the module runs in here: "float32" or "bfloat16" (asked once per run)."""
    if "dtype" not in learner.memo:
        learner.memo["dtype"] = probe(learner, max_side.session_dtype, during="reading the device's dtype")
    return learner.memo["dtype"]


def session(learner, *arrays):
    """The inputs as values of the run's dtype (unchanged in float32), so that the oracle sees what forward saw."""
    dtype = dtype_of(learner)
    rounded = tuple(representable(array, dtype) for array in arrays)
    return rounded if len(rounded) != 1 else rounded[0]


def tol(learner, value: float) -> float:
    """A float32 tolerance, widened to the run's dtype when that is coarser (bfloat16 keeps 8 significant bits)."""
    return max(value, tolerance(dtype_of(learner), DIM))


def gap_limit(learner, value: float, y) -> float:
    """How far two computations of the same output may differ: `value` in float32; in bfloat16, a few units in the
    last place of the largest output (a bfloat16 rounding of 8 moves it by 1/32)."""
    dtype = dtype_of(learner)
    return value if dtype == "float32" else tolerance(dtype, DIM) * (1 + float(np.max(np.abs(y))))


def fresh(learner, **kwargs) -> dict:
    return probe(learner, max_side.fresh, during=f"creating LayerNorm({DIM}{', eps=1e-3' if kwargs else ''})", **kwargs)


def forward(learner, x, gamma=None, beta=None, eps=None) -> tuple[np.ndarray, list]:
    """The learner's forward on `x` (values of the run's dtype), and its F.layer_norm calls."""
    report = probe(learner, max_side.forward, x, gamma, beta, eps, during="calling LayerNorm.forward")
    return output(report["out"], "forward", x.shape, dtype_of(learner)), report["calls"]


def output(value, name, shape, dtype="float32") -> np.ndarray:
    return expect_array(value, name, kind="max", shape=shape, dtype=dtype)


def parameter(report: dict, name: str, dtype: str = "float32") -> np.ndarray:
    """The fresh module's `weight` or `bias` as an array, or Fail naming what it is instead."""
    role = "gamma: Tensor.ones([dim])" if name == "weight" else "beta: Tensor.zeros([dim])"
    if name not in report:
        raise Fail(f"LayerNorm(dim) has no `self.{name}`; create it in __init__ ({role}).")
    value = report[name]
    if value is None:
        raise Fail(f"`self.{name}` is still None: replace the placeholder with {role.split(': ')[1]}.")
    if not (isinstance(value, TensorRecord) and value.framework == "max"):
        raise Fail(
            f"`self.{name}` is a {type_name(value)}; it must be a MAX Tensor ({role}), so that MAX tracks it "
            "as a parameter and can compile the module."
        )
    if value.shape != (DIM,):
        extra = (
            " Use Tensor.ones([dim]) / Tensor.zeros([dim]), not [dim, 1]: the parameters are 1-D, one value per "
            "feature."
            if value.shape == (DIM, 1)
            else ""
        )
        raise Fail(f"LayerNorm({DIM}).{name} has shape {list(value.shape)}, expected [{DIM}] ([dim]).{extra}")
    if value.dtype != dtype:
        raise Fail(f"LayerNorm({DIM}).{name} is {value.dtype}, expected {dtype} ({DTYPE_DEFAULT_ON[dtype]}).")
    return value.values


def rows(seed: int, n: int) -> np.ndarray:
    """(n, DIM) float32 whose variances span 1e-3..4, so eps=0.5 changes the output a lot."""
    return random_case(seed, (n, DIM), dtype="float32", scales=(0.03, 2.0))[0]


def parameters(seed: int):
    return random_case(seed, (1, DIM), dtype="float32")[1:]


# -- the worked example's twelve lines ------------------------------------------------------------
@checklist.check("functional module is correctly imported as F from max.experimental")
def functional_imported(learner):
    found = learner.probe(max_side.imports, during="reading your imports")
    if found["functional"]:
        return "as F" if "F" in found["functional"] else f"as {found['functional'][0]}; the tutorial calls it F"
    if found["layer_norm"]:
        return f"layer_norm imported by name as {found['layer_norm'][0]}"
    raise Fail(
        "max.experimental.functional is not imported: add `from max.experimental import functional as F` "
        "(F.layer_norm, F.mean and F.rsqrt come from it)."
    )


@checklist.check("Tensor is correctly imported from max.experimental.tensor")
def tensor_imported(learner):
    found = learner.probe(max_side.imports, during="reading your imports")
    if found["tensor"]:
        return "" if "Tensor" in found["tensor"] else f"as {found['tensor'][0]}"
    if found["tensor_module"]:
        return f"through the module {found['tensor_module'][0]}"
    raise Fail(
        "Tensor is not imported: add `from max.experimental.tensor import Tensor` "
        "(Tensor.ones and Tensor.zeros create the parameters)."
    )


@checklist.check("LayerNorm class exists (a max.experimental.nn Module with a forward method)")
def class_exists(learner):
    return learner.probe(max_side.class_report, during="looking at your LayerNorm class")


@checklist.check("Tensor.ones is used for weight initialization (weight starts as all ones)", timeout=EAGER_TIMEOUT)
def weight_ones(learner):
    weight = parameter(fresh(learner), "weight", dtype_of(learner))
    if np.all(weight == 0):
        raise Fail(
            "The weight starts as zeros: ones and zeros look swapped. gamma = Tensor.ones([dim]) "
            "(scale by 1), beta = Tensor.zeros([dim]) (shift by 0)."
        )
    if not np.all(weight == 1):
        raise Fail(
            f"The weight starts as {np.round(weight[:4], 3)}..., expected all ones: Tensor.ones([dim]), so a "
            "fresh LayerNorm only normalises."
        )
    return ""


@checklist.check("Tensor.zeros is used for bias initialization (bias starts as all zeros)", timeout=EAGER_TIMEOUT)
def bias_zeros(learner):
    bias = parameter(fresh(learner), "bias", dtype_of(learner))
    if np.all(bias == 1):
        raise Fail(
            "The bias starts as ones: ones and zeros look swapped. beta = Tensor.zeros([dim]) "
            "(shift by 0), gamma = Tensor.ones([dim])."
        )
    if not np.all(bias == 0):
        raise Fail(f"The bias starts as {np.round(bias[:4], 3)}..., expected all zeros: Tensor.zeros([dim]).")
    return ""


@checklist.check("F.layer_norm is used (forward calls it)", timeout=EAGER_TIMEOUT)
def layer_norm_called(learner):
    _, calls = forward(learner, session(learner, rows(1, 4)))
    if not calls:
        raise Fail(
            "forward did not call F.layer_norm: return F.layer_norm(x, gamma=self.weight, beta=self.bias, "
            "epsilon=self.eps) (the from-scratch version belongs in layer_norm_from_scratch)."
        )
    if all(call["kind"] == "ops" for call in calls):
        raise Fail(
            "forward calls max.graph.ops.layer_norm, the graph-building op; use max.experimental.functional's "
            "F.layer_norm, which works on eager Tensors too."
        )
    return f"{len(calls)} call(s)"


@checklist.check("F.layer_norm is used with correct parameters (gamma, beta, epsilon)", timeout=EAGER_TIMEOUT)
def layer_norm_parameters(learner):
    x, gamma, beta = session(learner, rows(2, 6), *parameters(3))
    y, calls = forward(learner, x, gamma, beta, 0.5)
    for call in [call for call in calls if call["kind"] == "F"][-1:]:
        if call["gamma_is_bias"]:
            raise Fail("gamma and beta are swapped: pass gamma=self.weight, beta=self.bias.")
        if call["epsilon"] not in (None, 0.5):
            raise Fail(
                f"LayerNorm({DIM}, eps=0.5) passed epsilon={call['epsilon']!r} to F.layer_norm: epsilon looks "
                "hard-coded. Pass epsilon=self.eps."
            )
    return expect_close(
        y,
        layernorm(x, gamma, beta, 0.5),
        name="forward",
        atol=tol(learner, 1e-4),
        rtol=tol(learner, 1e-4),
        mistakes=forward_mistakes(x, gamma, beta, 0.5, FIXES),
    )


@checklist.check("All placeholder 'None' values have been replaced", timeout=EAGER_TIMEOUT)
def no_placeholders(learner):
    report = fresh(learner)
    for name in ("weight", "bias", "eps"):
        if name in report and report[name] is None:
            fix = "store the eps argument (self.eps = eps)" if name == "eps" else "replace the placeholder"
            raise Fail(f"`self.{name}` is still None: {fix}.")
    forward(learner, session(learner, rows(4, 3)))
    return ""


@checklist.check("LayerNorm class can be instantiated", timeout=EAGER_TIMEOUT)
def instantiates(learner):
    fresh(learner)
    fresh(learner, eps=1e-3)
    return "LayerNorm(16) and LayerNorm(16, eps=1e-3)"


@checklist.check(
    "LayerNorm.weight is initialized (a Tensor of shape [dim] in the default dtype, a module parameter)",
    timeout=EAGER_TIMEOUT,
)
def weight_initialized(learner):
    return registered(learner, "weight")


@checklist.check(
    "LayerNorm.bias is initialized (a Tensor of shape [dim] in the default dtype, a module parameter)",
    timeout=EAGER_TIMEOUT,
)
def bias_initialized(learner):
    return registered(learner, "bias")


def registered(learner, name) -> str:
    report = fresh(learner)
    parameter(report, name, dtype_of(learner))
    if name not in report["parameters"]:
        raise Fail(f"`{name}` is not among the module's parameters: assign it directly as self.{name} in __init__.")
    return f"shape [{DIM}], {dtype_of(learner)}"


@checklist.check("LayerNorm.eps has correct default value: 1e-05", timeout=EAGER_TIMEOUT)
def eps_default(learner):
    report = fresh(learner)
    if "eps" not in report:
        raise Fail("LayerNorm(dim) has no `self.eps`: store the eps argument in __init__ (self.eps = eps).")
    eps = report["eps"]
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        raise Fail(f"`self.eps` is {eps!r}; it must be the float eps (default 1e-5).")
    if eps != 1e-5:
        raise Fail(
            f"LayerNorm(dim).eps is {eps!r}; the default must be 1e-5 (PyTorch's and GPT-2's): "
            "def __init__(self, dim, *, eps=1e-5)."
        )
    return "LayerNorm(dim).eps == 1e-05"


# -- beyond the worked example -------------------------------------------------------------------------
@checklist.check(
    "forward handles 2-D (batch, dim) and 3-D (batch, seq, dim) inputs, over the last axis", timeout=EAGER_TIMEOUT
)
def two_and_three_d(learner):
    gamma, beta = session(learner, *parameters(6))
    x2 = session(learner, rows(7, 5) * 10 + 100)  # a large mean: cancellation shows
    expect_close(
        forward(learner, x2, gamma, beta)[0],
        layernorm(x2, gamma, beta, 1e-5),
        name="forward (2-D)",
        atol=tol(learner, 2e-3),
        rtol=tol(learner, 1e-3),
        mistakes=forward_mistakes(x2, gamma, beta, 1e-5, FIXES),
    )
    # The default eps must reach the kernel: rows with a variance near 1e-5 show it.
    tiny = session(learner, (np.random.default_rng(5).normal(size=(4, DIM)) * 3e-3).astype(np.float32))
    wrong_eps = [
        Mistake(
            f"With the default eps, forward does not use 1e-5 (it matches eps={eps:g}): pass epsilon=self.eps",
            lambda eps=eps: layernorm(tiny, 1.0, 0.0, eps),
        )
        for eps in (1e-6, 1e-12, 1e-3)
    ]
    expect_close(
        forward(learner, tiny)[0],
        layernorm(tiny, 1.0, 0.0, 1e-5),
        name="forward (variance near eps)",
        atol=tol(learner, 2e-3),
        mistakes=wrong_eps,
    )
    x3 = session(learner, rows(8, 6).reshape(2, 3, DIM))
    seq_and_dim = Mistake(
        "A 3-D input is normalised over (seq, dim) together: F.layer_norm normalises over the last "
        "axis only; do not reshape x",
        lambda: layernorm(x3, gamma, beta, 1e-5, axes=(1, 2)),
    )
    return expect_close(
        forward(learner, x3, gamma, beta)[0],
        layernorm(x3, gamma, beta, 1e-5),
        name="forward (3-D)",
        atol=tol(learner, 1e-4),
        rtol=tol(learner, 1e-4),
        mistakes=[seq_and_dim, *forward_mistakes(x3, gamma, beta, 1e-5, FIXES)],
    )


@checklist.check(
    "layer_norm_from_scratch (F.mean, F.rsqrt, ...) matches the float64 oracle and forward, without F.layer_norm",
    timeout=GRAPH_TIMEOUT,
)
def from_scratch(learner):
    (gamma, beta), eps = session(learner, *parameters(9)), 0.1  # eps large: inside or outside the root differ
    # Rows around 100: E[x²] - E[x]² loses ~1e-2 there in float32, a centred variance ~1e-5 (measured with MAX 26.7).
    xs = [session(learner, rows(10, 6)), session(learner, rows(11, 3) + 100)]
    outs = probe(
        learner, max_side.from_scratch, xs, gamma, beta, eps, during="tracing and running layer_norm_from_scratch"
    )
    details = []
    for index, (x, out) in enumerate(zip(xs, outs, strict=True)):
        y = output(out, "layer_norm_from_scratch", x.shape)
        try:
            details.append(
                expect_close(
                    y,
                    layernorm(x, gamma, beta, eps),
                    name="layer_norm_from_scratch",
                    atol=2e-4,
                    rtol=2e-4,
                    mistakes=forward_mistakes(x, gamma, beta, eps, SCRATCH_FIXES),
                )
            )
        except Fail as failure:
            if index == 1 and "differs from the float64 oracle" in str(failure):
                raise Fail(
                    "Right for rows near 0, wrong for rows around 100: E[x²] - E[x]² cancels in float32. Centre "
                    f"first, then average the squares: F.mean((x - mean) * (x - mean), axis=-1). ({failure})"
                ) from None
            raise
    # The fused kernel and the composition must agree with each other, not only with the oracle.
    gap = float(np.max(np.abs(forward(learner, xs[0], gamma, beta, eps)[0].astype(np.float64) - outs[0].values)))
    if gap > gap_limit(learner, 5e-4, outs[0].values):
        raise Fail(
            f"layer_norm_from_scratch matches the oracle, but forward differs from it by {gap:.2g} on the same "
            "input and parameters: the problem is in forward (see the checks above)."
        )
    return f"{details[0]}; {gap:.1e} from forward"


@checklist.check(
    "compile_layer_norm: one graph with a symbolic batch runs batch sizes 1, 5 and 32 and matches eager",
    timeout=GRAPH_TIMEOUT,
    slow=True,  # MAX compiles the graph: seconds even from its cache
)
def compiled_graph(learner):
    xs = [session(learner, rows(20 + n, n)) for n in (1, 5, 32)]
    with compile_hints():
        results = probe(learner, max_side.compiled, xs, during="compiling with compile_layer_norm")
    worst = 0.0
    for x, result in zip(xs, results, strict=True):
        if "error" in result:
            n = result["batch"]
            raise Fail(
                f"The compiled graph refused a batch of {n} row{'s' * (n != 1)}: it was compiled for one batch "
                "size. Compile with a symbolic batch dim, TensorType(DType.float32, ['batch', dim], device=...), "
                f"so one graph serves every batch size. (MAX said: {result['error'][:200]})"
            )
        graph, eager = (
            output(result["compiled"], "the compiled graph", x.shape, dtype_of(learner)),
            output(result["eager"], "forward", x.shape, dtype_of(learner)),
        )
        limit = tol(learner, 1e-4)
        expect_close(graph, layernorm(x, 1.0, 0.0, 1e-5), name="the compiled graph", atol=limit, rtol=limit)
        worst = max(worst, float(np.max(np.abs(graph.astype(np.float64) - eager))))
    if worst > gap_limit(learner, 1e-4, eager):
        raise Fail(f"The compiled graph and eager forward differ by {worst:.2g}.")
    return f"max gap to eager {worst:.1e}"


@contextmanager
def compile_hints():
    try:
        yield
    except LearnerError as error:
        text = str(error)
        if "does not match" in text and ("Gamma" in text or "Beta" in text or "dimension" in text):
            raise Fail(
                f"The compiled graph's input does not end in dim: the TensorType must be [..., dim] ({text[:160]})."
            ) from None
        raise
