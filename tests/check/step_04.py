"""Step 04 checklist: LayerNorm as a PyTorch nn.Module, without PyTorch's own layer norm.

Probes (the `_name` functions) build the learner's LayerNorm in their process and send back what
it computed (tensors arrive as `TensorRecord`s); every verdict is taken here against the oracle.
"""

from __future__ import annotations

import numpy as np

from tests.check.kit import (
    Checklist,
    Fail,
    LearnerError,
    error_hints,
    expect_array,
    expect_close,
    forward_mistakes,
    gradient_mistakes,
    layernorm,
    layernorm_grads,
    random_case,
    torch_side,
    upstream_gradient,
)

checklist = Checklist(
    step="04", preload=("torch",), title="LayerNorm as a PyTorch nn.Module", import_timeout=60, default_timeout=30
)

WORKED_X = [[[2.0, 3.0, 5.0, 6.0]]]
WORKED_Y = [[[-1.2649, -0.6324, 0.6324, 1.2649]]]  # the worked example's printed output, eps=1e-4
NAMES = torch_side.NAMES
FIXES = {  # the catalogued mistakes, and how to fix each in PyTorch
    "eps-ignored": "store it (self.eps = eps) and use self.eps",
    "no-eps": "use torch.sqrt(var + self.eps)",
    "last-dim-only": "dim=tuple(range(-len(self.normalized_shape), 0))",
    "unbiased": "torch.var and torch.std default to D-1; use x.var(dim, keepdim=True, unbiased=False) (or "
    "correction=0), or ((x - mean)**2).mean(dim)",
    "unbiased-eps-outside": "use (x - mean) / torch.sqrt(var + eps) with the biased var",
    "eps-outside": "use (x - mean) / torch.sqrt(var + eps) (or * torch.rsqrt(var + eps)), not / (std + eps)",
    "batch-axis": "LayerNorm normalises each position over its own trailing normalized_shape dims",
    "whole": "reduce over the trailing normalized_shape dims only, with keepdim=True",
    "no-affine": "return x_hat * self.weight + self.bias",
    "beta-first": "compute x_hat * weight + bias",
    "swapped": "",
    "by-variance": "use torch.sqrt(var + eps)",
    "not-centred": "x_hat = (x - mean) / sqrt(var + eps)",
    "times-std": "divide by torch.sqrt(var + eps), or multiply by torch.rsqrt(var + eps)",
}
CUT = (
    "the {} cut from the graph (.detach(), .item(), .data or torch.no_grad()), so autograd misses that gradient. "
    "Compute the statistics with ordinary torch operations on x"
)
DX_FIXES = {
    "no-mean-path": CUT.format("mean is"),
    "no-variance-path": CUT.format("variance is"),
    "constant-statistics": CUT.format("mean and the variance are"),
}
FORWARD_ERRORS = {
    "Can't call numpy() on Tensor that requires grad": (
        "forward converts to NumPy: autograd cannot follow a NumPy round trip. Use torch operations only"
    ),
    "a leaf Variable that requires grad is being used in an in-place operation": (
        "forward modifies x in place (x -= mean, x.sub_(...)): compute new tensors instead"
    ),
    "must match the size of tensor": "Shapes do not broadcast: keep the statistics with keepdim=True, and weight "
    "and bias shaped normalized_shape",
}


# -- judging ----------------------------------------------------------------------------------------
def run(learner, probe, *args, **kwargs):
    with error_hints(FORWARD_ERRORS):
        return learner.probe(probe, *args, during="running your LayerNorm", **kwargs)


def tensor(value, name, shape, dtype=None) -> np.ndarray:
    return expect_array(value, name, kind="torch", shape=shape, dtype=dtype)


def as_arg(normalized_shape):
    """How a learner writes it: 8 for (8,), (3, 4) as it is."""
    return normalized_shape[0] if len(normalized_shape) == 1 else tuple(normalized_shape)


def axes_of(normalized_shape) -> tuple:
    return tuple(range(-len(normalized_shape), 0))


def mistakes_for(x, weight, bias, eps=1e-5):
    return forward_mistakes(x, weight, bias, eps, FIXES, axes=axes_of(np.shape(weight)), names=NAMES)


def forward_matches(learner, x, weight, bias, *, eps=1e-5, dtype="float64", atol=None, name="y") -> str:
    shape = np.shape(weight)
    out = run(learner, torch_side.forward, as_arg(shape), x, (weight, bias), eps=eps, dtype=dtype)
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


# -- checks -----------------------------------------------------------------------------------------
@checklist.check("LayerNorm(512) has weight (ones) and bias (zeros): trainable nn.Parameters shaped normalized_shape")
def parameters_registered(learner):
    report = learner.probe(torch_side.parameters, during="creating LayerNorm(512)")
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
    for name, moved in zip(
        NAMES, learner.probe(torch_side.sgd_step, during="training LayerNorm for one SGD step"), strict=True
    ):
        if not moved:
            raise Fail(
                f"One SGD step over layer.parameters() did not change `{name}`: its gradient does not reach "
                "it (is it used in forward?)."
            )
    return f"parameters {report['names']}; one SGD step updates both"


@checklist.check("normalized_shape is stored as a tuple and eps as given (1e-5 by default)")
def attributes(learner):
    found, eps_given = learner.probe(torch_side.attributes, during="creating LayerNorm")
    for label, expected in (("512", (512,)), ("(3, 4)", (3, 4)), ("[3, 4]", (3, 4))):
        shape, eps = found[label]
        if shape == "<missing>":
            raise Fail(
                f"LayerNorm({label}) has no `normalized_shape` attribute: store it, as a tuple "
                "(forward needs its length to know how many trailing dims to normalise)."
            )
        if not (type(shape) is tuple and shape == expected):
            raise Fail(
                f"LayerNorm({label}).normalized_shape is {shape!r}; nn.LayerNorm stores the tuple "
                f"{expected}: (normalized_shape,) for an int, tuple(normalized_shape) otherwise."
            )
        if eps != 1e-5:
            raise Fail(f"LayerNorm({label}).eps is {eps!r}; the default is 1e-5 (store it: self.eps = eps).")
    if eps_given != 1e-4:
        raise Fail(f"LayerNorm(4, eps=1e-4).eps is {eps_given!r}: store the eps you are given.")
    return ""


@checklist.check("does not use nn.LayerNorm, F.layer_norm, torch.layer_norm or torch.native_layer_norm")
def no_builtin(learner):
    cases = [
        (as_arg(shape), random_case(seed, x_shape, shape, "float32")[0], upstream_gradient(seed, x_shape, "float32"))
        for seed, x_shape, shape in ((41, (3, 8), (8,)), (42, (2, 3, 4), (3, 4)))
    ]
    try:
        run(learner, torch_side.run_without_builtin, cases)
    except LearnerError as error:
        if error.exc_type != "BuiltinLayerNormUsed":
            raise
        where = f" (line {error.where[0]}: `{error.where[1]}`)" if error.where else ""
        raise Fail(
            f"Your LayerNorm calls PyTorch's own layer norm{where}: {error.detail}. The step is to compute it "
            "yourself: mean, biased variance, (x - mean) / sqrt(var + eps), then weight and bias."
        ) from None
    return "forward and backward ran with them banned"


@checklist.check(
    "worked example: LayerNorm(512) on randn(4, 10, 512) keeps the shape; a position has mean ≈ 0, std ≈ 1"
)
def worked_example_512(learner):
    x = np.random.default_rng(0).standard_normal((4, 10, 512)).astype(np.float32)
    y = tensor(run(learner, torch_side.forward, 512, x), "output", x.shape, "float32")
    expect_close(
        y,
        layernorm(x, 1.0, 0.0, 1e-5),
        name="output",
        atol=2e-5,
        rtol=1e-5,
        mistakes=mistakes_for(x, np.ones(512), np.zeros(512)),
    )
    position = y[0, 0]
    mean, biased, unbiased = position.mean(), position.std(), position.std(ddof=1)
    if abs(mean) > 1e-5 or abs(biased - 1.0) > 1e-4:
        raise Fail(f"output[0, 0] has mean {mean:.3g} and biased std {biased:.6f}; expected 0 and 1.")
    return (
        f"output[0, 0]: mean {mean:.1e}, std {biased:.4f} (biased, what LayerNorm makes 1); the example's "
        f"`.std()` is torch's unbiased one and prints {unbiased:.4f} for 512 features"
    )


@checklist.check("worked example (eps=1e-4): [[[2, 3, 5, 6]]] gives [[[-1.2649, -0.6324, 0.6324, 1.2649]]]")
def worked_example_eps(learner):
    x = np.array(WORKED_X, np.float32)
    y = tensor(run(learner, torch_side.forward, 4, x, eps=1e-4), "output", x.shape, "float32")
    return expect_close(y, WORKED_Y, name="output", atol=1e-4, mistakes=mistakes_for(x, np.ones(4), np.zeros(4), 1e-4))


@checklist.check(
    "forward matches the float64 oracle: int normalized_shape, 2-D and 3-D inputs, float32 and float64, "
    "eps 1e-5 and 0.5"
)
def forward_int_shape(learner):
    return cases_matching(
        learner,
        (
            (1, (5, 8), "float64", 1e-5),
            (2, (2, 3, 6), "float64", 1e-5),
            (3, (7, 16), "float32", 1e-5),
            (4, (2, 4, 16), "float32", 1e-5),
            (20, (4, 8), "float64", 0.5),
        ),
    )


@checklist.check("tuple normalized_shape (3, 4) normalises over the last two dims (3-D and 4-D inputs)")
def forward_tuple_shape(learner):
    return cases_matching(
        learner,
        ((5, (2, 3, 4), "float64", 1e-5), (6, (2, 5, 3, 4), "float64", 1e-5), (7, (6, 3, 4), "float32", 1e-5)),
        (3, 4),
    )


@checklist.check(
    "gradients w.r.t. x, weight and bias match the oracle (random upstream gradients, int and tuple shapes)"
)
def gradients(learner):
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
        result = run(learner, torch_side.gradients, as_arg(shape), x, (weight, bias), dy)
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


@checklist.check("state_dict is interchangeable with nn.LayerNorm, both ways")
def state_dict_exchange(learner):
    for seed, x_shape, shape in ((11, (3, 6), (6,)), (12, (2, 3, 4), (3, 4))):
        x, w1, b1 = random_case(seed, x_shape, shape, "float32")
        _, w2, b2 = random_case(seed + 1, x_shape, shape, "float32")
        keys, *loaded = run(learner, torch_side.state_dict_exchange, as_arg(shape), x, (w1, b1), (w2, b2))
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


@checklist.check("same output in train() and eval()")
def train_eval(learner):
    x, weight, bias = random_case(13, (5, 7), dtype="float32")
    train, evaluation = (
        tensor(y, f"y in {mode}", x.shape, "float32")
        for y, mode in zip(run(learner, torch_side.modes, x, (weight, bias)), ("train()", "eval()"), strict=True)
    )
    if not np.array_equal(train, evaluation):
        raise Fail(
            f"The output changes between train() and eval() (max difference "
            f"{np.max(np.abs(train - evaluation)):.2g}): LayerNorm keeps no running statistics and has no "
            "dropout; it computes the same thing in both modes."
        )
    return expect_close(
        train, layernorm(x, weight, bias, 1e-5), name="y", atol=2e-5, rtol=1e-5, mistakes=mistakes_for(x, weight, bias)
    )


@checklist.check("each position's output is independent of the rest of the batch")
def batch_independent(learner):
    for seed, x_shape, index in ((14, (6, 6), 2), (15, (3, 5, 6), 1)):
        x, weight, bias = random_case(seed, x_shape)
        x[0] = x[0] * 1000.0 + 50.0  # one loud neighbour
        full = tensor(
            run(learner, torch_side.forward, 6, x, (weight, bias), dtype="float64"), "y for the batch", x.shape
        )
        alone = tensor(
            run(learner, torch_side.forward, 6, x[index][None], (weight, bias), dtype="float64"),
            "y for one item",
            (1, *x.shape[1:]),
        )
        if not np.allclose(full[index], alone[0], atol=1e-9, rtol=1e-9):
            raise Fail(
                f"Item {index}'s output changes when the other items in the batch change: the mean and "
                "variance must be taken over the normalized_shape dims of each position only, never over "
                "the batch (that is BatchNorm)."
            )
        expect_close(
            full,
            layernorm(x, weight, bias, 1e-5),
            name="y",
            atol=1e-9,
            rtol=1e-8,
            mistakes=mistakes_for(x, weight, bias),
        )
    return ""


@checklist.check("the input x is not modified")
def input_untouched(learner):
    x = random_case(16, (4, 5), dtype="float32")[0]
    if not np.array_equal(tensor(run(learner, torch_side.input_after, x), "x after the call", x.shape), x):
        raise Fail(
            "x was modified in place (x -= mean, x.sub_(...), x.div_(...)): the caller's tensor changed. "
            "Build new tensors: centred = x - mean."
        )
    return ""


@checklist.check("a shape mismatch raises an error naming both shapes, as nn.LayerNorm does")
def shape_mismatch(learner):
    cases = [(8, (3, 7)), (8, (4, 1)), ((3, 4), (2, 4, 3))]
    for (shape, x_shape), outcome in zip(cases, outcomes := run(learner, torch_side.mismatches, cases), strict=True):
        expected = ", ".join(map(str, (shape,) if isinstance(shape, int) else shape))
        call, named = f"LayerNorm({shape!r}) on an input of shape {x_shape}", ", ".join(map(str, x_shape))
        fix = (
            "Compare x.shape[-len(self.normalized_shape):] with self.normalized_shape and raise, e.g. "
            f'ValueError(f"expected input with shape [*, {expected}], got {{list(x.shape)}}").'
        )
        if outcome[0] == "returned":
            raise Fail(
                f"{call} returned a result of shape {outcome[1]} instead of raising: broadcasting hid the "
                f"mismatch. {fix}"
            )
        if named not in outcome[2] or expected not in outcome[2]:
            raise Fail(
                f"{call} raised `{outcome[1]}: {outcome[2][:120]}`, which does not say which shapes disagree. "
                f"nn.LayerNorm's says: expected input with shape [*, {expected}], but got input of size "
                f"{list(x_shape)}. {fix}"
            )
    return f"e.g. {outcomes[0][1]}: {outcomes[0][2][:100]}"


@checklist.check("float16 and bfloat16 inputs are computed in float32 and returned in the input dtype")
def low_precision(learner):
    details = []
    # Rows far from zero: statistics rounded to 16 bits lose the centring; float32 ones do not.
    for dtype, offset, atol, rtol in (("float16", 300.0, 2e-3, 1e-3), ("bfloat16", 100.0, 1e-2, 8e-3)):
        x = (offset + np.random.default_rng(17).normal(size=(64, 128))).astype(np.float32)
        _, weight, bias = random_case(18, (64, 128), dtype="float32")
        seen, out = run(learner, torch_side.low_precision, x, (weight, bias), dtype)
        seen = tensor(seen, "x", x.shape).astype(np.float32)
        # The same values in float32 first: a wrong forward is named as such, not as a precision problem.
        forward_matches(
            learner, seen, weight, bias, dtype="float32", atol=1e-4
        )  # rows around 100-300: float32 loses ~2 digits
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


@checklist.check("nn.LayerNorm's keywords elementwise_affine=False and bias=False (checked if __init__ takes them)")
def keywords(learner):
    x, weight, _ = random_case(19, (4, 6), dtype="float32")
    found = learner.probe(
        torch_side.keyword_variants, x, weight, during="creating LayerNorm with nn.LayerNorm's keywords"
    )
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
