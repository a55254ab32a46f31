"""Step 01 checklist: LayerNorm forward in NumPy."""

from __future__ import annotations

import numpy as np

from tests.check.kit import (
    Checklist,
    Fail,
    LearnerError,
    expect_array,
    expect_tuple,
    expect_vectorised,
    explain,
    forward_diagnosis,
    forward_matches,
    forward_output,
    forward_value,
    judge_large_mean,
    line_events,
    numpy_only,
    random_case,
)

checklist = Checklist(step="01", import_timeout=5, default_timeout=5, preload=("numpy",))

FORWARD = "layernorm_forward"


@checklist.check(
    "worked example 1 (eps=0): [[1, 2], [3, 4]] with gamma [2, 1], beta [0.5, -0.5] gives [[-1.5, 0.5], [-1.5, 0.5]]"
)
def worked_example_1(learner):
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    return forward_matches(
        learner, x, np.array([2.0, 1.0]), np.array([0.5, -0.5]), 0.0, expected=[[-1.5, 0.5], [-1.5, 0.5]]
    )


@checklist.check("worked example 2: a constant row [1, 1, 1] gives zeros, not NaN (eps at work)")
def worked_example_2(learner):
    x, gamma, beta = np.ones((1, 3)), np.ones(3), np.zeros(3)
    y = forward_value(learner, x, gamma, beta)  # eps left at its default
    if isinstance(y, np.ndarray) and y.shape == x.shape and y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise Fail(
            forward_diagnosis(learner)
            or "`y` is NaN for a constant row: its variance is 0, and eps is what keeps 1 / sqrt(var + eps) finite. "
            "eps is missing, or added where it cannot prevent the division (outside the square root): use "
            "1 / np.sqrt(var + eps)."
        )
    return forward_matches(learner, x, gamma, beta, None, expected=np.zeros((1, 3)))


@checklist.check("worked examples 3-4 (eps=0): [[1, 2, 3], [2, 4, 6]] with identity and with non-trivial gamma/beta")
def worked_examples_3_4(learner):
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    forward_matches(learner, x, np.ones(3), np.zeros(3), 0.0)
    return forward_matches(learner, x, np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0]), 0.0)


@checklist.check("random inputs (N=7, D=13, random gamma/beta) match the float64 oracle")
def random_match(learner):
    return forward_matches(learner, *random_case(1, (7, 13)), 1e-5)


@checklist.check("variance is the biased one (divides by D)")
def biased_variance(learner):
    x = np.array([[0.0, 2.0, 4.0, 10.0], [-3.0, 1.0, 1.0, 1.0]])
    return forward_matches(learner, x, np.ones(4), np.zeros(4), 0.0)


@checklist.check("gamma and beta shaped (1, D) work too")
def row_shaped_params(learner):
    x, gamma, beta = random_case(2, (5, 6))
    try:
        return forward_matches(learner, x, gamma.reshape(1, -1), beta.reshape(1, -1), 1e-5)
    except (Fail, LearnerError) as failure:
        forward_matches(learner, x, gamma, beta, 1e-5)  # if (D,) fails too, that failure is the news
        why = explain(failure, learner.path) if isinstance(failure, LearnerError) else str(failure)
        raise Fail(
            f"(D,) parameters work but (1, D) ones do not: {why} Reshape them with "
            "np.reshape(gamma, (1, -1)), which fits both; never transpose them."
        ) from None


@checklist.check("output dtype matches the input (float32 in, float32 out)")
def keeps_dtype(learner):
    x, gamma, beta = random_case(3, (4, 8), dtype=np.float32)
    return forward_matches(learner, x, gamma, beta, 1e-5)  # float32 in: float32 out, to float32's precision


@checklist.check("eps is honoured (eps=10 shrinks the output as it should)")
def eps_honoured(learner):
    return forward_matches(learner, *random_case(4, (3, 5)), 10.0)


@checklist.check("each row is normalised on its own (a row's output does not depend on the others)")
def rows_independent(learner):
    x, gamma, beta = random_case(5, (6, 6))  # square: a wrong axis cannot hide behind an error
    x[0] *= 1000.0
    full = forward_output(learner, x, gamma, beta)
    alone = forward_output(learner, x[2:3], gamma, beta)
    if not np.allclose(full[2], alone[0], atol=1e-6):
        raise Fail(
            forward_diagnosis(learner)
            or "Row 2's output changes when other rows change: the mean and variance must be taken "
            "along axis=1 (each row's D features), with keepdims=True."
        )
    return forward_matches(learner, x, gamma, beta, 1e-5)


def _forward_and_inputs_after(learner_module, x, gamma, beta):
    """(probe) y, and the inputs after the call: were they modified?"""
    y, _ = learner_module.layernorm_forward(x, gamma, beta)
    return y, x, gamma, beta


@checklist.check("x, gamma and beta are not modified")
def inputs_untouched(learner):
    x, gamma, beta = random_case(6, (4, 5))
    y, *after = expect_tuple(
        learner.probe(_forward_and_inputs_after, x, gamma, beta, during=f"calling {FORWARD}"), "the forward", 4
    )
    expect_array(y, "y", shape=x.shape)  # nothing to judge until the forward computes something
    for name, before, now in zip(("x", "gamma", "beta"), (x, gamma, beta), after, strict=True):
        if not (isinstance(now, np.ndarray) and now.shape == before.shape and np.array_equal(now, before)):
            raise Fail(f"`{name}` was modified in place: work on a new array (x - mean, not x -= mean).")
    return ""


def _first_result_after_a_second_call(learner_module, first, second):
    """(probe) y of a first call as it came back, and the same object after a second call."""
    y, _ = learner_module.layernorm_forward(*first)
    as_returned = y.copy() if isinstance(y, np.ndarray) else y
    learner_module.layernorm_forward(*second)
    return as_returned, y


@checklist.check("each call returns a new y (a second call leaves the first result as it was)")
def new_result_each_call(learner):
    first, second = random_case(9, (4, 6)), random_case(10, (4, 6))
    as_returned, after = expect_tuple(
        learner.probe(_first_result_after_a_second_call, first, second, during=f"calling {FORWARD} twice"),
        "two forward calls",
        2,
    )
    expect_array(as_returned, "y", shape=first[0].shape)
    if not (isinstance(after, np.ndarray) and np.array_equal(after, as_returned)):
        raise Fail(
            "The first call's y changed when the forward ran again: y is an array shared between calls (a "
            "module-level buffer, or one kept and reused). Return a new array from each call."
        )
    return ""


@checklist.check("numerically stable: float32 rows around 1e4 with unit spread")
def stable_large_mean(learner):
    x = (1e4 + np.random.default_rng(7).normal(size=(8, 256))).astype(np.float32)
    gamma, beta = np.ones(256, np.float32), np.zeros(256, np.float32)
    forward_matches(learner, x - np.float32(1e4), gamma, beta, 1e-5)  # the same rows around 0: any other mistake
    fix = "Subtract the mean first, then average the squares: mean((x - mean)**2)."
    return judge_large_mean(forward_value(learner, x, gamma, beta), x, gamma, beta, limit=5e-2, fix=fix, dtype=x.dtype)


checklist.check("uses NumPy only")(numpy_only)


@checklist.check("vectorised: no Python loop over rows")
def vectorised(learner):
    cases = [random_case(8, (n, 16)) for n in (2, 64)]
    return expect_vectorised(learner.probe(line_events, FORWARD, cases, during=f"calling {FORWARD}"), FORWARD)
