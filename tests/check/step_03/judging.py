"""Judging step 03's MAX LayerNorm module: the run's dtype and tolerances, the learner's module and forward as
arrays, and the checks beyond the worked example (2-D/3-D inputs, the from-scratch path, the compiled graph).

Judge side: every probe runs in the learner's process through `probes`; verdicts are taken here.
"""

from __future__ import annotations

import importlib.metadata
from contextlib import contextmanager

import numpy as np

from tests.check.engine import Fail
from tests.check.kit.judging import (
    Mistake,
    error_hints,
    expect_array,
    expect_close,
    layernorm,
    random_case,
    representable,
    tolerance,
    type_name,
)
from tests.check.kit.max_side import add_device_option
from tests.check.kit.mistakes import axes_mistakes, forward_mistakes
from tests.check.sandbox import LearnerError
from tests.check.step_03 import probes
from tests.check.wire import TensorRecord

EXPECTED_MAX = "26.7.0"  # the pin in pyproject.toml; the step is written against this API
DIM = probes.DIM


def installed_max_version() -> str | None:
    """The installed MAX's version, read from package metadata (importing max takes seconds)."""
    try:
        return importlib.metadata.version("max")
    except importlib.metadata.PackageNotFoundError:
        return None


def version_notes(options=None) -> list[str]:
    """A warning when the installed MAX is not the pinned one (or is missing), and what a first run costs."""
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


def add_device_and_dtype_options(parser) -> None:
    """Step 03's options: --device and --dtype."""
    add_device_option(parser, "where MAX runs the checks (default auto: an accelerator when MAX sees one)")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the module's dtype (default auto: MAX's default on the device, float32 on a CPU, bfloat16 on a GPU)",
    )


def where_it_ran(learner, options, report) -> list[str]:
    """The note after the checks: the device (and the dtype, unless float32) they ran on."""
    try:
        where = learner.probe(probes.device_label, options.device, during="reading the device")
        dtype = dtype_of(learner)
    except (LearnerError, Fail):
        return []
    return [f"Ran on {where}." if dtype == "float32" else f"Ran on {where}, in {dtype}."]


# -- the run's dtype, the learner's module and forward ---------------------------------------------
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
        learner.memo["dtype"] = probe(learner, probes.session_dtype, during="reading the device's dtype")
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
    return probe(learner, probes.fresh, during=f"creating LayerNorm({DIM}{', eps=1e-3' if kwargs else ''})", **kwargs)


def forward(learner, x, gamma=None, beta=None, eps=None) -> tuple[np.ndarray, list]:
    """The learner's forward on `x` (values of the run's dtype), and its F.layer_norm calls (the dtypes it cast to are
    kept in learner.memo["forward casts"], for `narrowed`)."""
    report = probe(learner, probes.forward, x, gamma, beta, eps, during="calling LayerNorm.forward")
    learner.memo["forward casts"] = report["casts"]
    return output(report["out"], "forward", x.shape, dtype_of(learner)), report["calls"]


NARROWER = {"float32": ("bfloat16", "float16"), "bfloat16": (), "float64": ("float32", "bfloat16", "float16")}


@contextmanager
def narrowed(function: str, casts, dtype: str):
    """A result that differs from the oracle, where `function` cast to a dtype narrower than its `dtype` input, is
    named as that cast: its precision, not a formula, is what is off."""
    try:
        yield
    except Fail as failure:
        narrow = [c for c in casts if c in NARROWER.get(dtype, ())]
        if not narrow or "differs from the float64 oracle" not in str(failure):
            raise
        raise Fail(
            f"{function} casts its {dtype} values to {narrow[0]} (.cast(DType.{narrow[0]})): {narrow[0]} keeps "
            f"{'8' if narrow[0] == 'bfloat16' else '11'} significant bits, so the statistics and the result lose "
            f"precision. Compute in the input's dtype, without the cast. ({failure})"
        ) from None


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


def registered(learner, name) -> str:
    report = fresh(learner)
    parameter(report, name, dtype_of(learner))
    if name not in report["parameters"]:
        raise Fail(f"`{name}` is not among the module's parameters: assign it directly as self.{name} in __init__.")
    follows_defaults(learner, name)
    return f"shape [{DIM}], {dtype_of(learner)}; follows MAX's default dtype and device"


def follows_defaults(learner, name) -> None:
    """The parameter takes MAX's default dtype and device, as Tensor.ones([dim]) does: created again where the default
    dtype is the other one (bfloat16 on a CPU), it follows, and __init__ names no device itself. A dtype or device
    fixed in __init__ passes on a CPU in float32 and fails on a GPU, where MAX's defaults are bfloat16 and the GPU."""
    here = dtype_of(learner)
    other = "bfloat16" if here == "float32" else "float32"
    if "defaults" not in learner.memo:
        learner.memo["defaults"] = probe(
            learner, probes.parameter_defaults, other, during=f"creating LayerNorm({DIM}) with {other} as the default"
        )
    found = learner.memo["defaults"]
    role = "Tensor.ones([dim])" if name == "weight" else "Tensor.zeros([dim])"
    if found[name] != other:
        raise Fail(
            f"LayerNorm({DIM}).{name} is {found[name]} where MAX's default dtype is {other}: its dtype is fixed in "
            f"__init__ (dtype=DType.{found[name]}?). Create it without a dtype, {role}, so that it follows the "
            "default: float32 on a CPU, bfloat16 on a GPU (compile_layer_norm sets it with default_dtype(dtype))."
        )
    if found["devices"]:
        raise Fail(
            f"LayerNorm's __init__ puts its parameters on a fixed device ({found['devices'][0]}): on a GPU, where MAX "
            f"puts the input by default, the parameters would not be. Create them without device=..., {role}: they "
            "follow the default device, and compile_layer_norm moves the layer with layer.to(device)."
        )


# -- beyond the worked example ------------------------------------------------------------------------
def forward_shapes_match(learner, fixes) -> str:
    """forward on 2-D inputs around 100, rows whose variance is near the default eps, and 3-D inputs."""
    gamma, beta = session(learner, *parameters(6))
    x2 = session(learner, rows(7, 5) * 10 + 100)  # a large mean: cancellation shows
    expect_close(
        forward(learner, x2, gamma, beta)[0],
        layernorm(x2, gamma, beta, 1e-5),
        name="forward (2-D)",
        atol=tol(learner, 2e-3),
        rtol=tol(learner, 1e-3),
        mistakes=forward_mistakes(x2, gamma, beta, 1e-5, fixes),
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
        mistakes=[seq_and_dim, *forward_mistakes(x3, gamma, beta, 1e-5, fixes)],
    )


FEATURES = "LayerNorm takes both over the features"
SCRATCH_AXES = "F.mean(..., axis=-1) for the mean and for the variance"
SYMBOLIC_VALUES = (  # MAX's error for a value read while tracing
    "layer_norm_from_scratch reads values out of its input (.to_numpy(), .item(), NumPy, print): it is traced into a "
    "graph, where the values do not exist yet. Compose MAX ops only: F.mean, F.rsqrt, +, -, *"
)


def from_scratch_matches(learner, fixes) -> str:
    """layer_norm_from_scratch against the oracle (rows near 0, then around 100) and against forward."""
    (gamma, beta), eps = session(learner, *parameters(9)), 0.1  # eps large: inside or outside the root differ
    # Rows around 100: E[x²] - E[x]² loses ~1e-2 there in float32, a centred variance ~1e-5 (measured with MAX 26.7).
    xs = [session(learner, rows(10, 6)), session(learner, rows(11, 3) + 100)]
    with error_hints({"realize from a graph context": SYMBOLIC_VALUES}):
        found = probe(
            learner, probes.from_scratch, xs, gamma, beta, eps, during="tracing and running layer_norm_from_scratch"
        )
    outs, details = found["outputs"], []
    for index, (x, out) in enumerate(zip(xs, outs, strict=True)):
        y = output(out, "layer_norm_from_scratch", x.shape)
        try:
            with narrowed("layer_norm_from_scratch", found["casts"], "float32"):
                details.append(
                    expect_close(
                        y,
                        layernorm(x, gamma, beta, eps),
                        name="layer_norm_from_scratch",
                        atol=2e-4,
                        rtol=2e-4,
                        mistakes=[
                            *forward_mistakes(x, gamma, beta, eps, fixes),
                            *axes_mistakes(x, gamma, beta, eps, (-1,), SCRATCH_AXES, wanted=FEATURES, word="axis"),
                        ],
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


def compile_arguments_honoured(learner) -> str:
    """compile_layer_norm builds its TensorType from batch_dims and dtype: seen where Module.compile is called."""
    other = "float32" if dtype_of(learner) == "bfloat16" else "bfloat16"
    cases = [(("batch", "seq"), dtype_of(learner)), (("batch",), other)]
    found = probe(learner, probes.compile_input_types, cases, during="calling compile_layer_norm")
    fix = "build it from the arguments: TensorType(dtype, [*batch_dims, dim], device=layer.device)"
    if not all(found):  # compiled some other way (max.experimental.compilation.compile): the next check runs it
        return "not seen: compile_layer_norm does not call Module.compile (the next check runs its graph)"
    for (batch_dims, dtype), types in zip(cases, found, strict=True):
        call = f"compile_layer_norm({DIM}, batch_dims={batch_dims!r}, dtype=DType.{dtype})"
        given = types[0]
        if "dims" not in given:
            raise Fail(f"{call} compiles for a {given['type']}; pass a TensorType: {fix}.")
        dims, leading_static = given["dims"], given["static"][:-1]
        if len(dims) != len(batch_dims) + 1 or dims[-1] != str(DIM) or any(leading_static):
            what = "fixed sizes" if any(leading_static) else f"{len(dims) - 1} batch dim(s)"
            raise Fail(
                f"{call} compiles for inputs shaped {dims} ({what}): the graph must take [{', '.join(batch_dims)}, "
                f"{DIM}], symbolic batch dims (named ones) and the feature size last; {fix}."
            )
        if given["dtype"] != dtype:
            raise Fail(f"{call} compiles for {given['dtype']} inputs, not {dtype}: {fix}.")
        if given.get("eps") is not None and given["eps"] != probes.COMPILE_EPS:
            raise Fail(
                f"compile_layer_norm({DIM}, eps={probes.COMPILE_EPS:g}) compiles a LayerNorm whose eps is "
                f"{given['eps']:g}: it drops its eps argument. Pass it on: LayerNorm(dim, eps=eps)."
            )
    (seq, _), (_, other_dtype) = ([t["dims"], t["dtype"]] for t in (found[0][0], found[1][0]))
    return f"batch_dims=('batch', 'seq') gives {seq}; dtype=DType.{other} gives {other_dtype} inputs"


def compiled_graph_matches(learner) -> str:
    """compile_layer_norm's graph on batch sizes 1, 5 and 32, against the oracle and eager forward."""
    xs = [session(learner, rows(20 + n, n)) for n in (1, 5, 32)]
    with compile_hints():
        results = probe(learner, probes.compiled, xs, during="compiling with compile_layer_norm")
    worst = 0.0
    for x, result in zip(xs, results, strict=True):
        if "error" in result:
            n = result["batch"]
            raise Fail(
                f"The compiled graph refused a batch of {n} row{'s' * (n != 1)}: it was compiled for one batch "
                "size. Compile with symbolic batch dims, TensorType(dtype, [*batch_dims, dim], device=layer.device), "
                f"so one graph serves every batch size. (MAX said: {result['error'][:200]})"
            )
        graph, eager = (
            output(result["compiled"], "the compiled graph", x.shape, dtype_of(learner)),
            output(result["eager"], "forward", x.shape, dtype_of(learner)),
        )
        limit, eps = tol(learner, 1e-4), probes.COMPILE_EPS
        eps_dropped = Mistake(
            f"The graph of compile_layer_norm({DIM}, eps={eps:g}) normalises with eps=1e-5: compile_layer_norm drops "
            "its eps argument. Pass it on: LayerNorm(dim, eps=eps)",
            lambda x=x: layernorm(x, 1.0, 0.0, 1e-5),
        )
        expected = layernorm(x, 1.0, 0.0, eps)
        expect_close(graph, expected, name="the compiled graph", atol=limit, rtol=limit, mistakes=[eps_dropped])
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
