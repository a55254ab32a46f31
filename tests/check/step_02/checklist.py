"""Step 02 checklist: LayerNorm backward in NumPy (its judging, and the naming of its mistakes: `judging`)."""

from __future__ import annotations

import numpy as np

from tests.check.kit import (
    Checklist,
    Fail,
    expect_array,
    expect_close,
    expect_tuple,
    expect_vectorised,
    forward_matches,
    line_events,
    numpy_only,
    random_case,
    relative_error,
    upstream_gradient,
)
from tests.check.step_02.judging import (
    BACKWARD,
    FORWARD,
    FORWARD_WRONG,
    GRADIENTS,
    backward_run,
    grads_of,
    judge,
    judge_grads,
    named,
)

checklist = Checklist(step="02", import_timeout=5, default_timeout=5, preload=("numpy",))


# -- probes: run in the learner's process, return plain data ------------------------------------
def _backward_after_another_forward(learner_module, first, second, dy):
    """The gradients of a first forward's backward run at once, then again after a second forward (on other inputs
    of the same shape) ran in between, and the second forward's own. Every call gets fresh arrays: a call that
    mutates its arguments is left to the check that looks for it."""

    def forward(inputs):
        return learner_module.layernorm_forward(*(a.copy() for a in inputs))[1]

    def backward_of(cache):
        return learner_module.layernorm_backward(dy.copy(), cache)

    alone = backward_of(forward(first))
    cache, other = forward(first), forward(second)
    interleaved = backward_of(cache)
    return alone, interleaved, backward_of(other)


def _backward_twice(learner_module, x, gamma, beta, dy):
    """Two backward calls on one cache, and dy afterwards: a mutated dy or cache shows up here."""
    _, cache = learner_module.layernorm_forward(x, gamma, beta)
    return learner_module.layernorm_backward(dy, cache), learner_module.layernorm_backward(dy, cache), dy


def _forward_many(learner_module, cases, eps):
    return [learner_module.layernorm_forward(x, gamma, beta, eps)[0] for x, gamma, beta in cases]


def _backward_line_events(learner_module, cases):
    prepared = [(dy, learner_module.layernorm_forward(x, gamma, beta)[1]) for x, gamma, beta, dy in cases]
    return line_events(learner_module, BACKWARD, prepared)


def case(seed, n=6, d=9):
    return (*random_case(seed, (n, d)), upstream_gradient(seed, (n, d)))


# -- the checks ---------------------------------------------------------------------------------
@checklist.check("the forward in this file still matches the float64 oracle")
def forward_still_right(learner):
    x, gamma, beta, _ = case(11)
    try:
        detail = forward_matches(learner, x, gamma, beta, 1e-5)
        forward_matches(learner, 0.3 * x, gamma, beta, 0.5)  # eps comparable with the variance: it must be used
    except Fail as failure:
        raise Fail(str(failure), cause=failure.cause or FORWARD_WRONG, blocks=failure.blocks) from None
    return detail


@checklist.check("worked example 3 (eps=0, dy = ones): dbeta = [2, 2, 2], dgamma = [-2.449490, 0, 2.449490], dx = 0")
def worked_example_3(learner):
    x, gamma, dy = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]), np.ones(3), np.ones((2, 3))
    _, dx, dgamma, dbeta = grads_of(learner, x, gamma, np.zeros(3), 0.0, dy)  # dgamma unrounded: ±sqrt(6)
    details = [judge(learner, name, value, x, gamma, 0.0, dy) for name, value in (("dbeta", dbeta), ("dgamma", dgamma))]
    details.append(judge(learner, "dx", dx, x, gamma, 0.0, dy))
    return "; ".join(f"{name} {detail}" for name, detail in zip(("dbeta", "dgamma", "dx"), details, strict=True))


def register_gradient_check(name: str, seed: int, gradient: str) -> None:
    """A check that one gradient matches the oracle, naming the classic mistakes of that gradient."""

    def matches(learner):
        x, gamma, beta, dy = case(seed)
        return judge_grads(learner, x, gamma, beta, 1e-5, dy, which=(gradient,))

    checklist.check(name)(matches)


register_gradient_check("dbeta matches the oracle (random dy)", 12, "dbeta")
register_gradient_check("dgamma matches the oracle (random dy)", 13, "dgamma")


def register_term_check(name: str, term: str) -> None:
    """A check of one term of dx alone, on the diagnostic run's dy that excites that term."""

    def term_right(learner):
        run = backward_run(learner)
        try:
            return expect_close(
                run.outputs[term]["dx"], run.expected_dx(term), name="dx", dtype=run.x.dtype, mistakes=()
            )
        except Fail as failure:
            raise Fail(run.names.get("dx") or str(failure)) from None

    checklist.check(name)(term_right)


register_term_check(
    "dx, the direct term: rstd * g with g = dy * gamma (for a g of zero mean, nothing along xhat)", "direct"
)
register_term_check("dx, the path through the mean: -rstd * mean(g) (g constant along a row gives dx = 0)", "mean")
register_term_check(
    "dx, the path through the variance: -rstd * xhat * mean(g * xhat) (g along xhat gives dx = rstd * g * eps / "
    "(var + eps))",
    "variance",
)
register_gradient_check("dx matches the oracle (random dy, random gamma)", 14, "dx")


@checklist.check("finite-difference gradient check (float64, centred): relative error < 1e-7 for dx, dgamma, dbeta")
def finite_differences(learner):
    x, gamma, beta, dy = case(15, n=3, d=5)
    eps, h = 1e-5, 1e-5
    _, *analytic = grads_of(learner, x, gamma, beta, eps, dy)
    inputs, cases, slots = (x, gamma, beta), [], []
    for slot, array in enumerate(inputs):
        for index in np.ndindex(array.shape):
            for sign in (1.0, -1.0):
                nudged = [a.copy() for a in inputs]
                nudged[slot][index] += sign * h
                cases.append(tuple(nudged))
            slots.append((slot, index))
    outputs = learner.probe(_forward_many, cases, eps, during=f"calling {FORWARD} on perturbed inputs")
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        raise Fail(f"{FORWARD} did not return y for every perturbed input.")
    numeric = [np.zeros_like(a) for a in inputs]
    for k, (slot, index) in enumerate(slots):
        plus, minus = (expect_array(outputs[2 * k + i], "y", shape=x.shape) for i in (0, 1))
        numeric[slot][index] = np.sum((plus - minus) * dy) / (2 * h)
    errors = {name: relative_error(a, n) for name, a, n in zip(GRADIENTS, analytic, numeric, strict=True)}
    bad = [name for name, error in errors.items() if error >= 1e-7]
    hints = [hint for hint in (named(learner, name) for name in bad) if hint]
    if hints:
        raise Fail(hints[0])
    if bad:
        raise Fail(
            "Your backward disagrees with the finite-difference gradient of your forward: relative error "
            f"{', '.join(f'{name} {errors[name]:.1e}' for name in bad)} (needs < 1e-7). If the forward is right, the "
            "analytic gradient is not."
        )
    return ", ".join(f"{name} {error:.0e}" for name, error in errors.items())


@checklist.check("gamma and beta shaped (1, D): dgamma and dbeta come back (D,) or (1, D), and right")
def row_shaped_params(learner):
    x, gamma, beta, dy = case(16)
    return judge_grads(learner, x, gamma.reshape(1, -1), beta.reshape(1, -1), 1e-5, dy)


@checklist.check("eps is honoured in the backward too (eps=0.5)")
def eps_honoured(learner):
    x, gamma, beta, dy = case(17, n=4, d=6)
    return judge_grads(learner, 0.3 * x, gamma, beta, 0.5, dy, which=("dx", "dgamma"))  # variance comparable with eps


@checklist.check("the backward reads its own cache (forward A, forward B, then backward of A gives A's gradients)")
def own_cache(learner):
    (xa, gamma_a, beta_a, dy), (xb, gamma_b, beta_b, _) = case(24), case(25)
    returned = learner.probe(
        _backward_after_another_forward,
        (xa, gamma_a, beta_a),
        (xb, gamma_b, beta_b),
        dy,
        during=f"calling {FORWARD} twice, then {BACKWARD}",
    )
    alone, interleaved, second = (expect_tuple(grads, BACKWARD, 3) for grads in expect_tuple(returned, BACKWARD, 3))
    for name, a, b, c in zip(GRADIENTS, alone, interleaved, second, strict=True):
        a, b, c = expect_array(a, name), expect_array(b, name), expect_array(c, name)
        if a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-12):
            continue
        whose = (
            "the second forward's" if b.shape == c.shape and np.allclose(b, c, rtol=1e-12, atol=1e-12) else "another"
        )
        raise Fail(
            f"After a second forward, the backward of the first gives {whose} {name}: it reads something the second "
            "forward replaced (a module-level variable, or an array reused between calls), not only the cache it is "
            "given. Each forward must put arrays of its own in its cache."
        )
    return ""


@checklist.check("dy and the cache are not modified (a second backward gives the same gradients)")
def nothing_mutated(learner):
    x, gamma, beta, dy = case(18)
    first, second, dy_after = expect_tuple(
        learner.probe(_backward_twice, x, gamma, beta, dy, during=f"calling {BACKWARD} twice"), "two backward calls", 3
    )
    if not (isinstance(dy_after, np.ndarray) and np.array_equal(dy_after, dy)):
        raise Fail("`dy` was modified in place: compute into new arrays (g = dy * gamma, not dy *= gamma).")
    for name, a, b in zip(GRADIENTS, expect_tuple(first, BACKWARD, 3), expect_tuple(second, BACKWARD, 3), strict=True):
        a, b = expect_array(a, name), expect_array(b, name)
        if a.shape != b.shape or not np.allclose(a, b, atol=1e-12):
            raise Fail(
                f"A second backward call gives a different {name}: the backward modifies the cache "
                "(e.g. xhat *= ... on a cached array). Work on copies."
            )
    return ""


checklist.check("uses NumPy only")(numpy_only)


@checklist.check("vectorised: no Python loop over rows in the backward")
def vectorised(learner):
    cases = [case(19, n=n, d=16) for n in (2, 64)]
    return expect_vectorised(learner.probe(_backward_line_events, cases, during=f"calling {BACKWARD}"), BACKWARD)
