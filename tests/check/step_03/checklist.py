"""Step 03 checklist: LayerNorm as a Modular MAX module.

The worked example's twelve lines come first, each verified by running the learner's code; then 2-D/3-D inputs,
the from-scratch composition and the compiled graph (judged in `judging.py`). Every check reuses one feature
size and float32: MAX compiles a kernel the first time it meets an op (about 12 s each on a small machine), so the
eager kernels a LayerNorm meets are compiled together, once, while a second process compiles the learner's graph.
"""

from __future__ import annotations

import numpy as np

from tests.check.kit import NO_FIX, Checklist, Fail, MistakeKey, expect_close, forward_mistakes, layernorm
from tests.check.step_03 import probes
from tests.check.step_03.judging import (
    DIM,
    add_device_and_dtype_options,
    compile_arguments_honoured,
    compiled_graph_matches,
    dtype_of,
    forward,
    forward_shapes_match,
    fresh,
    from_scratch_matches,
    narrowed,
    parameter,
    parameters,
    registered,
    rows,
    session,
    tol,
    version_notes,
    where_it_ran,
)

EAGER_TIMEOUT = 180.0  # a check that may meet an op for the first time compiles its kernel
GRAPH_TIMEOUT = 240.0  # a graph compile, cold, on a busy two-core machine
FIXES = {  # the catalogued mistakes of a module around F.layer_norm, and how to fix each
    MistakeKey.EPS_IGNORED: "epsilon looks hard-coded. Pass epsilon=self.eps to F.layer_norm",
    MistakeKey.SWAPPED: "pass gamma=self.weight, beta=self.bias",
    MistakeKey.NO_AFFINE: "pass gamma=self.weight and beta=self.bias to F.layer_norm (not fresh ones and zeros)",
    MistakeKey.NO_BETA: "pass beta=self.bias",
    MistakeKey.NO_GAMMA: "pass gamma=self.weight",
    MistakeKey.AFFINE_TWICE: "return F.layer_norm(...) as it is: it applies gamma and beta itself",
}
SCRATCH_FIXES = {  # ... and of a composition of MAX primitives
    MistakeKey.EPS_IGNORED: "use the `eps` argument, not a constant",
    MistakeKey.NO_EPS: "use F.rsqrt(var + eps)",
    MistakeKey.UNBIASED: "F.mean((x - mean) * (x - mean), axis=-1) divides by dim",
    MistakeKey.EPS_OUTSIDE: "use F.rsqrt(var + eps), not 1 / (F.sqrt(var) + eps)",
    MistakeKey.BATCH_AXIS: "take the mean and variance over the last axis (axis=-1, the features), not axis=0",
    MistakeKey.WHOLE: "take them per row, with axis=-1",
    MistakeKey.NO_AFFINE: "return xhat * gamma + beta",
    MistakeKey.SWAPPED: NO_FIX,
    MistakeKey.BETA_FIRST: "compute xhat * gamma + beta",
    MistakeKey.BY_VARIANCE: "use F.rsqrt(var + eps)",
    MistakeKey.NOT_CENTRED: "xhat = (x - mean) * F.rsqrt(var + eps)",
    MistakeKey.TIMES_STD: "use F.rsqrt(var + eps) (1/sqrt), or divide by F.sqrt(var + eps)",
    MistakeKey.UNCENTRED_VARIANCE: "var = F.mean((x - mean) * (x - mean), axis=-1)",
    MistakeKey.AFFINE_FIRST: "return xhat * gamma + beta",
    MistakeKey.EPS_AFTER_DIVISION: "use F.rsqrt(var + eps)",
    MistakeKey.AFFINE_TWICE: "return xhat * gamma + beta, once",
}


checklist = Checklist(
    step="03",
    preload=(
        "max.experimental.tensor",
        "max.experimental.nn",
        "max.experimental.functional",
        probes.__name__,
    ),
    import_timeout=180.0,
    default_timeout=60.0,
    code_timeout=20.0,  # CPU seconds per call outside MAX's compiles: an infinite loop stops there
    add_arguments=add_device_and_dtype_options,
    notes=version_notes,
    after=where_it_ran,
    import_hints={"module_v3": probes.MODULE_HINT},
)


# -- the worked example's twelve lines ------------------------------------------------------------
def imported(learner, key: str, usual: str, instead: str, instead_note: str, missing: str) -> str:
    """A note on how the learner's file holds `key` (under the tutorial's name `usual` or another), or what it
    holds `instead` that serves; Fail with `missing` when neither."""
    found = learner.probe(probes.imports, during="reading your imports")
    if found[key]:
        return "" if usual in found[key] else f"as {found[key][0]}; the tutorial calls it {usual}"
    if found[instead]:
        return instead_note.format(found[instead][0])
    raise Fail(missing)


@checklist.check("functional module is correctly imported as F from max.experimental")
def functional_imported(learner):
    return imported(
        learner,
        "functional",
        "F",
        "layer_norm",
        "layer_norm imported by name as {}",
        "max.experimental.functional is not imported: add `from max.experimental import functional as F` "
        "(F.layer_norm, F.mean and F.rsqrt come from it).",
    )


@checklist.check("Tensor is correctly imported from max.experimental.tensor")
def tensor_imported(learner):
    return imported(
        learner,
        "tensor",
        "Tensor",
        "tensor_module",
        "through the module {}",
        "Tensor is not imported: add `from max.experimental.tensor import Tensor` "
        "(Tensor.ones and Tensor.zeros create the parameters).",
    )


@checklist.check("LayerNorm class exists (a max.experimental.nn Module with a forward method)")
def class_exists(learner):
    return learner.probe(probes.class_report, during="looking at your LayerNorm class")


def starts_as(learner, name: str, value: int, why: str) -> str:
    """'' when the fresh module's parameter `name` is all `value` (1: Tensor.ones, 0: Tensor.zeros); Fail otherwise."""
    values = parameter(fresh(learner), name, dtype_of(learner))
    words = {1: ("ones", "Tensor.ones([dim])"), 0: ("zeros", "Tensor.zeros([dim])")}
    (wanted, creator), (other, _) = words[value], words[1 - value]
    if np.all(values == 1 - value):
        raise Fail(
            f"The {name} starts as {other}: ones and zeros look swapped. gamma = Tensor.ones([dim]) (scale by 1), "
            "beta = Tensor.zeros([dim]) (shift by 0)."
        )
    if not np.all(values == value):
        raise Fail(f"The {name} starts as {np.round(values[:4], 3)}..., expected all {wanted}: {creator}{why}.")
    return ""


@checklist.check("Tensor.ones is used for weight initialization (weight starts as all ones)", timeout=EAGER_TIMEOUT)
def weight_ones(learner):
    return starts_as(learner, "weight", 1, ", so a fresh LayerNorm only normalises")


@checklist.check("Tensor.zeros is used for bias initialization (bias starts as all zeros)", timeout=EAGER_TIMEOUT)
def bias_zeros(learner):
    return starts_as(learner, "bias", 0, "")


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
    limit, mistakes = tol(learner, 1e-4), forward_mistakes(x, gamma, beta, 0.5, FIXES)
    with narrowed("forward", learner.memo["forward casts"], dtype_of(learner)):
        return expect_close(
            y, layernorm(x, gamma, beta, 0.5), name="forward", atol=limit, rtol=limit, mistakes=mistakes
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
    return forward_shapes_match(learner, FIXES)


@checklist.check(
    "layer_norm_from_scratch (F.mean, F.rsqrt, ...) matches the float64 oracle and forward, without F.layer_norm",
    timeout=GRAPH_TIMEOUT,
)
def from_scratch(learner):
    return from_scratch_matches(learner, SCRATCH_FIXES)


@checklist.check(
    "compile_layer_norm honours batch_dims and dtype (its TensorType) and eps (its module), seen at Module.compile"
)
def compile_arguments(learner):
    return compile_arguments_honoured(learner)


@checklist.check(
    "compile_layer_norm: one graph with a symbolic batch runs batch sizes 1, 5 and 32 and matches eager",
    timeout=GRAPH_TIMEOUT,
    slow=True,  # MAX compiles the graph: seconds even from its cache
)
def compiled_graph(learner):
    return compiled_graph_matches(learner)
