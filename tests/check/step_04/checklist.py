"""Step 04 checklist: LayerNorm as a PyTorch nn.Module, without PyTorch's own layer norm.

The probes (`probes`) build the learner's LayerNorm in their process and send back what it
computed (tensors arrive as `TensorRecord`s); every verdict is taken here against the oracle. The
fixes for PyTorch's classic mistakes and the longer checks' judging are in `judging.py`.
"""

from __future__ import annotations

import numpy as np

from tests.check.kit import (
    Checklist,
    Fail,
    LearnerError,
    expect_close,
    layernorm,
    random_case,
    type_name,
    upstream_gradient,
)
from tests.check.step_04 import probes
from tests.check.step_04.judging import (
    as_arg,
    cases_matching,
    gradients_match,
    keywords_like_nn_layernorm,
    low_precision_matches,
    mistakes_for,
    parameters_are_trainable,
    run,
    state_dicts_exchange,
    tensor,
)

checklist = Checklist(step="04", preload=("torch",), import_timeout=30, default_timeout=30)

WORKED_X = [[[2.0, 3.0, 5.0, 6.0]]]
WORKED_Y = [[[-1.2649, -0.6324, 0.6324, 1.2649]]]  # the worked example's printed output, eps=1e-4


# -- checks -----------------------------------------------------------------------------------------
@checklist.check("LayerNorm(512) has weight (ones) and bias (zeros): trainable nn.Parameters shaped normalized_shape")
def parameters_registered(learner):
    return parameters_are_trainable(learner)


@checklist.check("normalized_shape is stored as a tuple and eps as given (1e-5 by default)")
def attributes(learner):
    found, eps_given = learner.probe(probes.attributes, during="creating LayerNorm")
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
        if not isinstance(eps, (int, float)) or isinstance(eps, bool):
            raise Fail(
                f"LayerNorm({label}).eps is a {type_name(eps)}; store the float you are given, self.eps = eps (a "
                "tensor registered as a buffer also lands in the state_dict, which nn.LayerNorm's does not hold)."
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
        run(learner, probes.run_without_builtin, cases)
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
    y, again = (tensor(out, "output", x.shape, "float32") for out in run(learner, probes.forward_twice, 512, x))
    if not np.array_equal(y, again):
        raise Fail(
            f"The output changes from one call to the next on the same input (max difference "
            f"{np.max(np.abs(y - again)):.2g}): forward is random (dropout?). LayerNorm keeps no running statistics "
            "and has no dropout; it computes the same thing on every call, in train() and eval()."
        )
    expected, mistakes = layernorm(x, 1.0, 0.0, 1e-5), mistakes_for(x, np.ones(512), np.zeros(512))
    expect_close(y, expected, name="output", atol=2e-5, rtol=1e-5, mistakes=mistakes)
    position = y[0, 0]
    mean, biased, unbiased = position.mean(), position.std(), position.std(ddof=1)
    if abs(mean) > 1e-5 or abs(biased - 1.0) > 1e-4:
        # close to the oracle, yet off in its mean or spread: a catalogued mistake that small is still named
        error = np.max(np.abs(y - expected))
        closer = [m.hint for m in mistakes if np.max(np.abs(y - m.output())) < 0.25 * error]
        raise Fail(
            f"output[0, 0] has mean {mean:.3g} and biased std {biased:.6f}; expected 0 and 1."
            + (f" {closer[0]}." if closer else "")
        )
    return (
        f"output[0, 0]: mean {mean:.1e}, std {biased:.4f} (biased, what LayerNorm makes 1); the example's "
        f"`.std()` is torch's unbiased one and prints {unbiased:.4f} for 512 features"
    )


@checklist.check("worked example (eps=1e-4): [[[2, 3, 5, 6]]] gives [[[-1.2649, -0.6324, 0.6324, 1.2649]]]")
def worked_example_eps(learner):
    x = np.array(WORKED_X, np.float32)
    y = tensor(run(learner, probes.forward, 4, x, eps=1e-4), "output", x.shape, "float32")
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
    return gradients_match(learner)


@checklist.check("state_dict is interchangeable with nn.LayerNorm, both ways")
def state_dict_exchange(learner):
    return state_dicts_exchange(learner)


@checklist.check("same output in train() and eval()")
def train_eval(learner):
    x, weight, bias = random_case(13, (5, 7), dtype="float32")
    train, evaluation = (
        tensor(y, f"y in {mode}", x.shape, "float32")
        for y, mode in zip(run(learner, probes.modes, x, (weight, bias)), ("train()", "eval()"), strict=True)
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
        full = tensor(run(learner, probes.forward, 6, x, (weight, bias), dtype="float64"), "y for the batch", x.shape)
        alone = tensor(
            run(learner, probes.forward, 6, x[index][None], (weight, bias), dtype="float64"),
            "y for one item",
            (1, *x.shape[1:]),
        )
        if not np.allclose(full[index], alone[0], atol=1e-9, rtol=1e-9):
            raise Fail(
                f"Item {index}'s output changes when the other items in the batch change: the mean and "
                "variance must be taken over the normalized_shape dims of each position only, never over "
                "the batch (that is BatchNorm)."
            )
        wanted = layernorm(x, weight, bias, 1e-5)
        expect_close(full, wanted, name="y", atol=1e-9, rtol=1e-8, mistakes=mistakes_for(x, weight, bias))
    return ""


@checklist.check("the input x is not modified")
def input_untouched(learner):
    x = random_case(16, (4, 5), dtype="float32")[0]
    if not np.array_equal(tensor(run(learner, probes.input_after, x), "x after the call", x.shape), x):
        raise Fail(
            "x was modified in place (x -= mean, x.sub_(...), x.div_(...)): the caller's tensor changed. "
            "Build new tensors: centred = x - mean."
        )
    return ""


@checklist.check("a shape mismatch raises an error naming both shapes, as nn.LayerNorm does")
def shape_mismatch(learner):
    cases = [(8, (3, 7)), (8, (4, 1)), ((3, 4), (2, 4, 3))]
    for (shape, x_shape), outcome in zip(cases, outcomes := run(learner, probes.mismatches, cases), strict=True):
        normalized = (shape,) if isinstance(shape, int) else shape
        expected, trailing = ", ".join(map(str, normalized)), tuple(x_shape[-len(normalized) :])
        named = {", ".join(map(str, x_shape)), str(trailing), str(list(trailing))}  # all of x's shape, or its tail
        call = f"LayerNorm({shape!r}) on an input of shape {x_shape}"
        fix = (
            "Compare x.shape[-len(self.normalized_shape):] with self.normalized_shape and raise, e.g. "
            f'ValueError(f"expected input with shape [*, {expected}], got {{list(x.shape)}}").'
        )
        if outcome[0] == "returned":
            raise Fail(
                f"{call} returned a result of shape {outcome[1]} instead of raising: broadcasting hid the "
                f"mismatch. {fix}"
            )
        if expected not in outcome[2] or not any(shape_text in outcome[2] for shape_text in named):
            raise Fail(
                f"{call} raised `{outcome[1]}: {outcome[2][:120]}`, which does not name both shapes (the input's and "
                f"normalized_shape). nn.LayerNorm's says: expected input with shape [*, {expected}], but got input "
                f"of size {list(x_shape)}. {fix}"
            )
    return f"e.g. {outcomes[0][1]}: {outcomes[0][2][:100]}"


@checklist.check("float16 and bfloat16 inputs are computed in float32 and returned in the input dtype")
def low_precision(learner):
    return low_precision_matches(learner)


@checklist.check("nn.LayerNorm's keywords elementwise_affine=False and bias=False (checked if __init__ takes them)")
def keywords(learner):
    return keywords_like_nn_layernorm(learner)
