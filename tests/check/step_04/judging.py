"""Judging step 04's PyTorch LayerNorm module: the fixes for PyTorch's classic mistakes, the learner's forward
against the oracle, and the longer checks (parameters, gradients, state_dict, low precision).

Judge side: the module runs in the learner's process through `probes`; verdicts are taken here.
"""

from __future__ import annotations

import numpy as np

from tests.check.engine import Fail
from tests.check.kit.judging import (
    error_hints,
    expect_array,
    expect_close,
    layernorm,
    layernorm_grads,
    random_case,
    upstream_gradient,
)
from tests.check.kit.mistakes import NO_FIX, MistakeKey, axes_mistakes, forward_mistakes, gradient_mistakes
from tests.check.sandbox import LearnerError
from tests.check.step_04 import probes

NAMES = probes.NAMES
FIXES = {  # the catalogued mistakes, and how to fix each in PyTorch
    MistakeKey.EPS_IGNORED: "store it (self.eps = eps) and use self.eps",
    MistakeKey.NO_EPS: "use torch.sqrt(var + self.eps)",
    MistakeKey.LAST_DIM_ONLY: "dim=tuple(range(-len(self.normalized_shape), 0))",
    MistakeKey.UNBIASED: "torch.var and torch.std default to D-1; use x.var(dim, keepdim=True, unbiased=False) (or "
    "correction=0), or ((x - mean)**2).mean(dim)",
    MistakeKey.UNBIASED_EPS_OUTSIDE: "use (x - mean) / torch.sqrt(var + eps) with the biased var",
    MistakeKey.EPS_OUTSIDE: "use (x - mean) / torch.sqrt(var + eps) (or * torch.rsqrt(var + eps)), not / (std + eps)",
    MistakeKey.BATCH_AXIS: "LayerNorm normalises each position over its own trailing normalized_shape dims",
    MistakeKey.WHOLE: "reduce over the trailing normalized_shape dims only, with keepdim=True",
    MistakeKey.NO_AFFINE: "return x_hat * self.weight + self.bias",
    MistakeKey.BETA_FIRST: "compute x_hat * weight + bias",
    MistakeKey.SWAPPED: NO_FIX,
    MistakeKey.BY_VARIANCE: "use torch.sqrt(var + eps)",
    MistakeKey.NOT_CENTRED: "x_hat = (x - mean) / sqrt(var + eps)",
    MistakeKey.TIMES_STD: "divide by torch.sqrt(var + eps), or multiply by torch.rsqrt(var + eps)",
    MistakeKey.UNCENTRED_VARIANCE: "var = ((x - mean) ** 2).mean(dims, keepdim=True)",
    MistakeKey.AFFINE_FIRST: "y = (x - mean) / torch.sqrt(var + eps) * weight + bias",
    MistakeKey.EPS_AFTER_DIVISION: "(x - mean) / torch.sqrt(var + self.eps)",
    MistakeKey.AFFINE_TWICE: "apply weight and bias once",
}
CUT = (
    "the {} cut from the graph (.detach(), .item(), .data or torch.no_grad()), so autograd misses that gradient. "
    "Compute the statistics with ordinary torch operations on x"
)
DX_FIXES = {
    MistakeKey.NO_MEAN_PATH: CUT.format("mean is"),
    MistakeKey.NO_VARIANCE_PATH: CUT.format("variance is"),
    MistakeKey.CONSTANT_STATISTICS: CUT.format("mean and the variance are"),
}
FORWARD_ERRORS = {
    "Can't call numpy() on Tensor that requires grad": (
        "forward converts to NumPy: autograd cannot follow a NumPy round trip. Use torch operations only"
    ),
    "a leaf Variable that requires grad is being used in an in-place operation": (
        "forward modifies x in place (x -= mean, x.sub_(...)), and autograd refuses a tensor it needs modified in "
        "place: compute new tensors instead, centred = x - mean"
    ),
    "must match the size of tensor": "Shapes do not broadcast: keep the statistics with keepdim=True, and weight "
    "and bias shaped normalized_shape",
}


def run(learner, probe, *args, **kwargs):
    """A probe of the learner's LayerNorm; every input it is given matches normalized_shape, so an error the learner's
    own code raises (their shape check) is named as a check that rejects a valid input."""
    with error_hints(FORWARD_ERRORS):
        try:
            return learner.probe(probe, *args, during="running your LayerNorm", **kwargs)
        except LearnerError as error:
            code = error.where[1] if error.where else ""
            if not code.lstrip().startswith("raise ") or error.exc_type in ("NotImplementedError", "Fail"):
                raise
            raise Fail(
                f"Your own check raised `{error}` (line {error.where[0]}) for an input whose trailing dims match "
                "normalized_shape: it rejects valid input. Compare tuple(x.shape[-len(self.normalized_shape):]) with "
                "self.normalized_shape (a list never equals a tuple)."
            ) from None


def tensor(value, name, shape, dtype=None) -> np.ndarray:
    return expect_array(value, name, kind="torch", shape=shape, dtype=dtype)


def as_arg(normalized_shape):
    """How a learner writes it: 8 for (8,), (3, 4) as it is."""
    return normalized_shape[0] if len(normalized_shape) == 1 else tuple(normalized_shape)


def axes_of(normalized_shape) -> tuple:
    return tuple(range(-len(normalized_shape), 0))


AXES_FIX = "reduce over dim=tuple(range(-len(self.normalized_shape), 0)) with keepdim=True"


def mistakes_for(x, weight, bias, eps=1e-5):
    axes = axes_of(np.shape(weight))
    return [
        *forward_mistakes(x, weight, bias, eps, FIXES, axes=axes, names=NAMES),
        *axes_mistakes(x, weight, bias, eps, axes, AXES_FIX),
    ]


def forward_matches(learner, x, weight, bias, *, eps=1e-5, dtype="float64", atol=None, name="y") -> str:
    shape = np.shape(weight)
    out = run(learner, probes.forward, as_arg(shape), x, (weight, bias), eps=eps, dtype=dtype)
    y = tensor(out, name, x.shape, dtype)
    return expect_close(
        y,
        layernorm(x, weight, bias, eps, axes=axes_of(shape)),
        name=name,
        dtype=dtype,
        atol=atol,
        mistakes=mistakes_for(x, weight, bias, eps),
    )


def cases_matching(learner, cases, normalized_shape=None) -> str:
    """forward_matches on each (seed, x shape, dtype, eps); the max error per dtype."""
    details = {}
    for seed, x_shape, dtype, eps in cases:
        x, weight, bias = random_case(seed, x_shape, normalized_shape, dtype)
        details[dtype] = forward_matches(learner, x, weight, bias, eps=eps, dtype=dtype)
    return "; ".join(f"{dtype} {detail}" for dtype, detail in details.items())


# -- the longer checks -----------------------------------------------------------------------------
def parameters_are_trainable(learner) -> str:
    """LayerNorm(512)'s weight and bias: trainable nn.Parameters of the right shape and start; one SGD step moves
    them."""
    report = run(learner, probes.parameters)
    for name, init in (("weight", "ones"), ("bias", "zeros")):
        info, make = report[name], f"self.{name} = nn.Parameter(torch.{init}(self.normalized_shape))"
        if not info["tensor"]:
            raise Fail(
                f"LayerNorm(512).{name} is {info['type']}: create {make}; the names weight and bias make the "
                "state_dict match nn.LayerNorm's."
            )
        if info["buffer"]:
            raise Fail(f"`{name}` is a buffer (register_buffer): buffers are saved but never trained. Use {make}.")
        if not info["parameter"]:
            raise Fail(
                f"`{name}` is a plain torch.Tensor, not an nn.Parameter: layer.parameters() does not list it, "
                f"so an optimiser never updates it and state_dict() does not save it. Wrap it: {make}."
            )
        if not info["requires_grad"]:
            raise Fail(
                f"`{name}` has requires_grad=False: it is frozen and never learns. Leave nn.Parameter's "
                "default (requires_grad=True)."
            )
        values = tensor(info["value"], name, None)
        if values.shape != (512,):
            raise Fail(
                f"`{name}` has shape {values.shape}, expected (512,): create it with "
                f"torch.{init}(self.normalized_shape)."
            )
        if not np.all(values == (1.0 if init == "ones" else 0.0)):
            raise Fail(
                f"`{name}` does not start as {init}: a fresh LayerNorm must only normalise "
                "(weight = ones, bias = zeros: the identity affine map)."
            )
    for name, shape in report["tuple_shapes"].items():
        if shape != (3, 4):
            raise Fail(
                f"LayerNorm((3, 4)).{name} has shape {shape}, expected (3, 4): a tuple normalized_shape "
                "needs parameters of that whole shape, torch.ones(self.normalized_shape)."
            )
    for name, (before, after) in zip(NAMES, run(learner, probes.sgd_step), strict=True):
        if np.array_equal(tensor(before, name, (512,)), tensor(after, name, (512,))):
            raise Fail(
                f"One SGD step over layer.parameters() did not change `{name}`: its gradient does not reach "
                "it (is it used in forward?)."
            )
    return f"parameters {report['names']}; one SGD step updates both"


def gradients_match(learner) -> str:
    """dx, dweight and dbias against the oracle, for int and tuple shapes; a cut graph is named."""
    worst = {}
    for seed, x_shape, shape, dtype in (
        (8, (6, 10), (10,), "float64"),
        (9, (2, 3, 10), (10,), "float64"),
        (10, (4, 3, 5), (3, 5), "float64"),
        (21, (2, 2, 3, 5), (3, 5), "float64"),
        (22, (5, 12), (12,), "float32"),
    ):
        x, weight, bias = random_case(seed, x_shape, shape, dtype)
        dy, axes = upstream_gradient(seed, x_shape, dtype), axes_of(shape)
        result = run(learner, probes.gradients, as_arg(shape), x, (weight, bias), dy)
        y = tensor(result["y"], "y", x_shape, dtype)
        expect_close(
            y,
            layernorm(x, weight, bias, 1e-5, axes=axes),
            name="y",
            dtype=dtype,
            mistakes=mistakes_for(x, weight, bias),
        )
        if result["dx"] is None:
            cut = (
                "forward goes through NumPy (.numpy() / np.asarray), which autograd cannot follow. Compute "
                "everything with torch operations."
                if result["numpy"]
                else "the result is cut from the graph "
                "(.detach(), .data, .item(), torch.no_grad() or a NumPy round trip). Compute everything with "
                "torch operations on x."
            )
            raise Fail(f"No gradient reaches x: {cut}")
        for name in ("dweight", "dbias"):
            if result[name] is None:
                raise Fail(
                    f"LayerNorm.{name[1:]} received no gradient: is it an nn.Parameter, and is it used in forward?"
                )
        label = f"(normalized_shape={as_arg(shape)}, {dtype})"
        for name, expected in zip(
            ("dx", "dweight", "dbias"), layernorm_grads(x, weight, 1e-5, dy, axes=axes), strict=True
        ):
            got = tensor(result[name], name, expected.shape)
            mistakes = gradient_mistakes(x, weight, 1e-5, dy, DX_FIXES, axes=axes) if name == "dx" else ()
            expect_close(got, expected, name=f"{name} {label}", dtype=dtype, mistakes=mistakes)
            worst[dtype] = max(worst.get(dtype, 0.0), float(np.max(np.abs(got - expected))))
    return "; ".join(f"{dtype} max error {error:.1e}" for dtype, error in worst.items())


def state_dicts_exchange(learner) -> str:
    """The state_dict's keys, and outputs after loading it into nn.LayerNorm and back."""
    for seed, x_shape, shape in ((11, (3, 6), (6,)), (12, (2, 3, 4), (3, 4))):
        x, w1, b1 = random_case(seed, x_shape, shape, "float32")
        _, w2, b2 = random_case(seed + 1, x_shape, shape, "float32")
        keys, *loaded = run(learner, probes.state_dict_exchange, as_arg(shape), x, (w1, b1), (w2, b2))
        if keys != ["bias", "weight"]:
            missing, extra = sorted({"bias", "weight"} - set(keys)), sorted(set(keys) - {"bias", "weight"})
            advice = [f"{' and '.join(missing)} must be nn.Parameters with exactly these names"] if missing else []
            advice += (
                [f"register nothing else ({', '.join(extra)}): eps and normalized_shape are plain attributes"]
                if extra
                else []
            )
            raise Fail(f"state_dict() has keys {keys}; nn.LayerNorm's are ['bias', 'weight']: {'; '.join(advice)}.")
        for direction, (status, value), weight, bias in (
            ("your state_dict loaded into nn.LayerNorm", loaded[0], w1, b1),
            ("nn.LayerNorm's state_dict loaded into yours", loaded[1], w2, b2),
        ):
            if status == "error":
                raise Fail(f"{direction} failed: {value}")
            y = tensor(value, f"y after {direction}", x_shape, "float32")
            expect_close(
                y,
                layernorm(x, weight, bias, 1e-5, axes=axes_of(shape)),
                name=f"y after {direction}",
                atol=2e-5,
                rtol=1e-5,
                mistakes=mistakes_for(x, weight, bias),
            )
    return "keys ['bias', 'weight']; outputs agree after loading either way"


def low_precision_matches(learner) -> str:
    """float16 and bfloat16 inputs: computed in float32 (rows far from zero show it), returned in their dtype."""
    details = []
    # Rows far from zero: statistics rounded to 16 bits lose the centring; float32 ones do not.
    for dtype, offset, atol, rtol in (("float16", 300.0, 2e-3, 1e-3), ("bfloat16", 100.0, 1e-2, 8e-3)):
        x = (offset + np.random.default_rng(17).normal(size=(64, 128))).astype(np.float32)
        _, weight, bias = random_case(18, (64, 128), dtype="float32")
        seen, out = run(learner, probes.low_precision, x, (weight, bias), dtype)
        seen = tensor(seen, "x", x.shape).astype(np.float32)
        # The same values in float32 first: a wrong forward is named as such, not as a precision problem. Rows around
        # 100-300 cost a correct float32 LayerNorm about 2 digits; the moments formula loses far more.
        try:
            forward_matches(learner, seen, weight, bias, dtype="float32", atol=1e-4)
        except Fail as failure:
            if "differs from the float64 oracle" not in str(failure):
                raise
            near_zero = random_case(17, (64, 128), dtype="float32")
            forward_matches(learner, *near_zero, dtype="float32")  # a mistake that shows near 0 is named there
            raise Fail(
                f"Right for float32 rows near 0, wrong for float32 rows around {offset:g}: the variance cancels. "
                "E[x²] - E[x]² subtracts two numbers near offset² and keeps float32's rounding of them; centre first, "
                f"then average the squares: ((x - mean) ** 2).mean(dims, keepdim=True). ({failure})"
            ) from None
        if getattr(out, "dtype", dtype) != dtype:
            raise Fail(
                f"A {dtype} input came back as {out.dtype}: compute in float32, then cast the result back "
                "with y.to(x.dtype)."
            )
        y = tensor(out, f"y for a {dtype} input", x.shape, dtype)
        expected = layernorm(seen, weight, bias, 1e-5)
        error = float(np.max(np.abs(y - expected)))
        if not np.all(np.abs(y - expected) <= atol + rtol * np.abs(expected)):
            raise Fail(
                f"The {dtype} result is off by up to {error:.2g} on rows around {offset:g}: the statistics "
                f"were computed in {dtype}, which keeps only {'3' if dtype == 'float16' else '2'} significant "
                "digits. Upcast first (h = x.float()), normalise, then return y.to(x.dtype)."
            )
        details.append(f"{dtype}: max error {error:.1e}")
    return "; ".join(details)


def keywords_like_nn_layernorm(learner) -> str:
    """elementwise_affine=False and bias=False, where __init__ takes them: the parameters and output of
    nn.LayerNorm's."""
    x, weight, _ = random_case(19, (4, 6), dtype="float32")
    found = learner.probe(probes.keyword_variants, x, weight, during="creating LayerNorm with nn.LayerNorm's keywords")
    if not found:
        return "not taken by your LayerNorm (optional)"
    for keyword, parameters, scale in (
        ("elementwise_affine=False", [], np.ones(6)),
        ("bias=False", ["weight"], weight),
    ):
        if keyword not in found:
            continue
        result = found[keyword]
        if result["parameters"] != parameters:
            raise Fail(
                f"LayerNorm(6, {keyword}) has parameters {result['parameters']}; nn.LayerNorm has "
                f"{parameters}. The missing ones are None (self.bias = None)."
            )
        for name in (n for n in NAMES if n not in parameters and result[n] != "NoneType"):
            raise Fail(f"LayerNorm(6, {keyword}).{name} is a {result[name]}; nn.LayerNorm sets it to None.")
        y = tensor(result["y"], f"y with {keyword}", x.shape, "float32")
        expect_close(y, layernorm(x, scale, 0.0, 1e-5), name=f"y with {keyword}", atol=2e-5, rtol=1e-5)
    return ", ".join(found) + " behave like nn.LayerNorm"
