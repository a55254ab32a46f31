"""Step 02 checklist: LayerNorm backward in NumPy (seed: "LayerNorm forward/backward (NumPy)")."""

from __future__ import annotations

import numpy as np

from tests.check.engine import Checklist, Fail
from tests.check.judge import (
    Mistake,
    error_hints,
    expect_array,
    expect_close,
    expect_tuple,
    layernorm,
    layernorm_grads,
    random_inputs,
    relative_error,
)
from tests.check.step_01 import BROADCAST_HINTS, expect_vectorised, forward_mistakes, line_events, numpy_only

checklist = Checklist(step="02", title="LayerNorm backward in NumPy", import_timeout=10)

FORWARD, BACKWARD = "layernorm_forward", "layernorm_backward"


# -- probes: run in the learner's process, return plain data ------------------------------------
def _forward_backward(learner_module, x, gamma, beta, eps, dy):
    """y from the learner's forward, then (dx, dgamma, dbeta) from their backward on its cache."""
    y, cache = learner_module.layernorm_forward(x, gamma, beta, eps)
    return y, learner_module.layernorm_backward(dy, cache)


def _backward_twice(learner_module, x, gamma, beta, dy):
    """Two backward calls on one cache, and dy afterwards: a mutated dy or cache shows up here."""
    _, cache = learner_module.layernorm_forward(x, gamma, beta)
    first = learner_module.layernorm_backward(dy, cache)
    second = learner_module.layernorm_backward(dy, cache)
    return first, second, dy


def _forward_many(learner_module, cases, eps):
    """y for each (x, gamma, beta), for the finite-difference gradient."""
    return [learner_module.layernorm_forward(x, gamma, beta, eps)[0] for x, gamma, beta in cases]


def _backward_line_events(learner_module, cases):
    prepared = [(dy, learner_module.layernorm_forward(x, gamma, beta)[1]) for x, gamma, beta, dy in cases]
    return line_events(learner_module, "layernorm_backward", prepared)


# -- judging ------------------------------------------------------------------------------------
def backward_mistakes(x, gamma, eps, dy):
    """(dx, dgamma, dbeta) of the classic wrong backwards, each with the hint that names it."""
    x, dy, gamma = np.asarray(x, np.float64), np.asarray(dy, np.float64), np.reshape(gamma, -1)
    mean = x.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = dy * gamma
    dx, dgamma, dbeta = layernorm_grads(x, gamma, eps, dy)
    column_mean = lambda a: a.mean(axis=0, keepdims=True)  # noqa: E731  the wrong-axis mistake
    return {
        "dx": [
            Mistake("dx misses the path through the mean: subtract mean(g) along the row "
                    "(g = dy * gamma)", lambda: rstd * (g - xhat * (g * xhat).mean(axis=1, keepdims=True))),
            Mistake("dx misses the path through the variance: subtract xhat * mean(g * xhat) along the row",
                    lambda: rstd * (g - g.mean(axis=1, keepdims=True))),
            Mistake("dx treats the mean and variance as constants: both correction terms are missing",
                    lambda: rstd * g),
            Mistake("dx ignores gamma: the gradient reaching xhat is dy * gamma, not dy",
                    lambda: layernorm_grads(x, np.ones_like(gamma), eps, dy)[0]),
            Mistake("dx has the wrong sign", lambda: -dx),
            Mistake("dx reduces over the wrong axis: the means in dx are per row (axis=1, keepdims=True)",
                    lambda: rstd * (g - column_mean(g) - xhat * column_mean(g * xhat))),
            Mistake("dx uses the unbiased variance (D-1): the forward's statistics are biased",
                    lambda: layernorm_grads_unbiased(x, gamma, eps, dy)),
        ],
        "dgamma": [
            Mistake("dgamma and dbeta look swapped: dbeta = sum(dy), dgamma = sum(dy * xhat)", lambda: dbeta),
            Mistake("dgamma sums dy * x; it must be dy * xhat (the normalised input)",
                    lambda: (dy * x).sum(axis=0)),
            Mistake("dgamma has the wrong sign", lambda: -dgamma),
        ],
        "dbeta": [
            Mistake("dgamma and dbeta look swapped: dbeta = sum(dy), dgamma = sum(dy * xhat)", lambda: dgamma),
            Mistake("dbeta has the wrong sign", lambda: -dbeta),
            Mistake("dbeta is a mean; it is the sum of dy over the batch", lambda: dy.mean(axis=0)),
        ],
    }


def layernorm_grads_unbiased(x, gamma, eps, dy):
    """dx of a LayerNorm whose variance divides by D-1 (a mistake the backward can inherit)."""
    d = x.shape[1]
    rstd = 1.0 / np.sqrt(x.var(axis=1, ddof=1, keepdims=True) + eps)
    xhat = (x - x.mean(axis=1, keepdims=True)) * rstd
    g = dy * gamma
    return rstd * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True) * d / (d - 1))


def grads_of(learner, x, gamma, beta, eps, dy):
    """The learner's (y, dx, dgamma, dbeta), checked for type and shape."""
    with error_hints(BROADCAST_HINTS):
        y, grads = expect_tuple(learner.probe(_forward_backward, x, gamma, beta, eps, dy,
                                              during=f"calling {FORWARD} then {BACKWARD}"), "forward + backward", 2)
    dx, dgamma, dbeta = expect_tuple(grads, BACKWARD, 3)
    n, d = x.shape
    y = expect_array(y, "y", shape=x.shape)
    dx = expect_array(dx, "dx", shape=x.shape)
    for name, value in (("dgamma", dgamma), ("dbeta", dbeta)):
        expect_array(value, name)
        if value.shape not in ((d,), np.shape(gamma)):
            summed_rows = value.shape == (n,)
            axis_hint = " It was summed over axis 1: sum over axis 0 (the batch) instead." if summed_rows else ""
            raise Fail(f"`{name}` has shape {value.shape}; expected ({d},) or the shape of gamma "
                       f"{np.shape(gamma)}.{axis_hint}")
    return y, dx, np.reshape(dgamma, -1), np.reshape(dbeta, -1)


def judge_grads(learner, x, gamma, beta, eps, dy, which=("dx", "dgamma", "dbeta")) -> str:
    _, dx, dgamma, dbeta = grads_of(learner, x, gamma, beta, eps, dy)
    expected = dict(zip(("dx", "dgamma", "dbeta"), layernorm_grads(x, np.reshape(gamma, -1), eps, dy), strict=True))
    got = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
    mistakes = backward_mistakes(x, gamma, eps, dy)
    details = [expect_close(got[name], expected[name], name=name, atol=1e-6, rtol=1e-6, mistakes=mistakes[name])
               for name in which]
    return details[0] if len(details) == 1 else "; ".join(f"{n} {d}" for n, d in zip(which, details, strict=True))


def _random_case(seed, n=6, d=9, dtype=np.float64):
    x, gamma, beta = random_inputs(seed, n, d, dtype)
    dy = np.random.default_rng(seed + 100).normal(size=(n, d)).astype(dtype)  # all-ones dy hides bugs
    return x, gamma, beta, dy


# -- the checks ---------------------------------------------------------------------------------
@checklist.check("seed example 3 (eps=0, dy = ones): dbeta = [2, 2, 2], dgamma = [-2.449490, 0, 2.449490], dx = 0")
def seed_example_3(learner):
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    dy = np.ones_like(x)
    _, dx, dgamma, dbeta = grads_of(learner, x, np.ones(3), np.zeros(3), 0.0, dy)
    mistakes = backward_mistakes(x, np.ones(3), 0.0, dy)
    expect_close(dbeta, [2.0, 2.0, 2.0], name="dbeta", atol=1e-6, mistakes=mistakes["dbeta"])
    expect_close(dgamma, [-2.449490, 0.0, 2.449490], name="dgamma", atol=1e-6, mistakes=mistakes["dgamma"])
    return expect_close(dx, np.zeros_like(x), name="dx", atol=1e-6, mistakes=mistakes["dx"])


@checklist.check("the forward in this file still matches the float64 oracle")
def forward_still_right(learner):
    x, gamma, beta, dy = _random_case(seed=11)
    y, *_ = grads_of(learner, x, gamma, beta, 1e-5, dy)
    return expect_close(y, layernorm(x, gamma, beta, 1e-5), name="y", atol=1e-6, rtol=1e-6,
                        mistakes=forward_mistakes(x, gamma, beta, 1e-5))


@checklist.check("dbeta matches the oracle (random dy)")
def dbeta_matches(learner):
    x, gamma, beta, dy = _random_case(seed=12)
    return judge_grads(learner, x, gamma, beta, 1e-5, dy, which=("dbeta",))


@checklist.check("dgamma matches the oracle (random dy)")
def dgamma_matches(learner):
    x, gamma, beta, dy = _random_case(seed=13)
    return judge_grads(learner, x, gamma, beta, 1e-5, dy, which=("dgamma",))


@checklist.check("dx matches the oracle (random dy, random gamma)")
def dx_matches(learner):
    x, gamma, beta, dy = _random_case(seed=14)
    return judge_grads(learner, x, gamma, beta, 1e-5, dy, which=("dx",))


@checklist.check("finite-difference gradient check (float64, centred): relative error < 1e-7 for dx, dgamma, dbeta")
def finite_differences(learner):
    x, gamma, beta, dy = _random_case(seed=15, n=3, d=5)
    eps, h = 1e-5, 1e-5
    _, dx, dgamma, dbeta = grads_of(learner, x, gamma, beta, eps, dy)
    cases, slots = [], []
    for name, array in (("dx", x), ("dgamma", gamma), ("dbeta", beta)):
        for index in np.ndindex(array.shape):
            for sign in (1.0, -1.0):
                inputs = {"dx": x.copy(), "dgamma": gamma.copy(), "dbeta": beta.copy()}
                inputs[name][index] += sign * h
                cases.append((inputs["dx"], inputs["dgamma"], inputs["dbeta"]))
            slots.append((name, index))
    outputs = learner.probe(_forward_many, cases, eps, during=f"calling {FORWARD} on perturbed inputs")
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        raise Fail(f"{FORWARD} did not return y for every perturbed input.")
    numeric = {"dx": np.zeros_like(x), "dgamma": np.zeros_like(gamma), "dbeta": np.zeros_like(beta)}
    for k, (name, index) in enumerate(slots):
        plus = expect_array(outputs[2 * k], "y", shape=x.shape)
        minus = expect_array(outputs[2 * k + 1], "y", shape=x.shape)
        numeric[name][index] = np.sum((plus - minus) * dy) / (2 * h)
    errors = {name: relative_error(analytic, numeric[name])
              for name, analytic in (("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta))}
    bad = {name: error for name, error in errors.items() if error >= 1e-7}
    if bad:
        worst = ", ".join(f"{name} {error:.1e}" for name, error in bad.items())
        raise Fail(f"Your backward disagrees with the finite-difference gradient of your forward: relative error "
                   f"{worst} (needs < 1e-7). If the forward is right, the analytic gradient is not.")
    return ", ".join(f"{name} {error:.0e}" for name, error in errors.items())


@checklist.check("gamma and beta shaped (1, D): dgamma and dbeta come back (D,) or (1, D), and right")
def row_shaped_params(learner):
    x, gamma, beta, dy = _random_case(seed=16)
    return judge_grads(learner, x, gamma.reshape(1, -1), beta.reshape(1, -1), 1e-5, dy)


@checklist.check("eps is honoured in the backward too (eps=0.5)")
def eps_honoured(learner):
    x, gamma, beta, dy = _random_case(seed=17, n=4, d=6)
    x *= 0.3  # a variance comparable with eps, so eps matters
    try:
        return judge_grads(learner, x, gamma, beta, 0.5, dy, which=("dx", "dgamma"))
    except Fail:
        _, dx, _, _ = grads_of(learner, x, gamma, beta, 0.5, dy)
        if np.allclose(dx, layernorm_grads(x, gamma, 1e-5, dy)[0], atol=1e-6):
            raise Fail("The backward uses eps=1e-5 whatever the forward was given: cache rstd (or eps) "
                       "in the forward and use it in the backward.") from None
        raise


@checklist.check("dy and the cache are not modified (a second backward gives the same gradients)")
def nothing_mutated(learner):
    x, gamma, beta, dy = _random_case(seed=18)
    result = expect_tuple(learner.probe(_backward_twice, x, gamma, beta, dy, during=f"calling {BACKWARD} twice"),
                          "two backward calls", 3)
    first, second, dy_after = result
    if not (isinstance(dy_after, np.ndarray) and np.array_equal(dy_after, dy)):
        raise Fail("`dy` was modified in place: compute into new arrays (g = dy * gamma, not dy *= gamma).")
    names = ("dx", "dgamma", "dbeta")
    first = [expect_array(a, name) for a, name in zip(expect_tuple(first, BACKWARD, 3), names, strict=True)]
    second = [expect_array(a, name) for a, name in zip(expect_tuple(second, BACKWARD, 3), names, strict=True)]
    for name, a, b in zip(names, first, second, strict=True):
        if a.shape != b.shape or not np.allclose(a, b, atol=1e-12):
            raise Fail(f"A second backward call gives a different {name}: the backward modifies the cache "
                       "(e.g. xhat *= ... on a cached array). Work on copies.")
    return ""


checklist.check("uses NumPy only")(numpy_only)  # the same rule as step 01


@checklist.check("vectorised: no Python loop over rows in the backward")
def vectorised(learner):
    cases = [_random_case(seed=19, n=n, d=16) for n in (2, 64)]
    return expect_vectorised(learner.probe(_backward_line_events, cases, during=f"calling {BACKWARD}"), BACKWARD)
