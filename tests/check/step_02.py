"""Step 02 checklist: LayerNorm backward in NumPy."""

from __future__ import annotations

import numpy as np

from tests.check.kit import (
    NUMPY_BROADCAST_HINTS,
    NUMPY_FIXES,
    Checklist,
    Fail,
    error_hints,
    expect_array,
    expect_close,
    expect_tuple,
    expect_vectorised,
    forward_mistakes,
    forward_value,
    gradient_mistakes,
    layernorm,
    layernorm_grads,
    line_events,
    numpy_only,
    parameter_gradient_mistakes,
    random_case,
    relative_error,
    upstream_gradient,
)

checklist = Checklist(
    step="02", title="LayerNorm backward in NumPy", import_timeout=5, default_timeout=5, preload=("numpy",)
)

FORWARD, BACKWARD = "layernorm_forward", "layernorm_backward"
DX_FIXES = {  # the catalogued wrong backwards, and how to fix each in NumPy
    "no-mean-path": "subtract mean(g) along the row (g = dy * gamma)",
    "no-variance-path": "subtract xhat * mean(g * xhat) along the row",
    "constant-statistics": "",
    "ignores-gamma": "",
    "sign": "",
    "batch-axis": "axis=1, keepdims=True",
    "unbiased": "",
}


# -- probes: run in the learner's process, return plain data ------------------------------------
def _forward_backward(learner_module, x, gamma, beta, eps, dy):
    """y from the learner's forward, then (dx, dgamma, dbeta) from their backward on its cache."""
    y, cache = learner_module.layernorm_forward(x, gamma, beta, eps)
    return y, learner_module.layernorm_backward(dy, cache)


def _backward_twice(learner_module, x, gamma, beta, dy):
    """Two backward calls on one cache, and dy afterwards: a mutated dy or cache shows up here."""
    _, cache = learner_module.layernorm_forward(x, gamma, beta)
    return learner_module.layernorm_backward(dy, cache), learner_module.layernorm_backward(dy, cache), dy


def _forward_many(learner_module, cases, eps):
    return [learner_module.layernorm_forward(x, gamma, beta, eps)[0] for x, gamma, beta in cases]


def _backward_line_events(learner_module, cases):
    prepared = [(dy, learner_module.layernorm_forward(x, gamma, beta)[1]) for x, gamma, beta, dy in cases]
    return line_events(learner_module, BACKWARD, prepared)


# -- judging ------------------------------------------------------------------------------------
def grads_of(learner, x, gamma, beta, eps, dy):
    """The learner's (y, dx, dgamma, dbeta), checked for type and shape."""
    n, d = x.shape
    per_row = {  # the return line reshapes dgamma and dbeta to gamma's shape: a per-row sum fails there
        f"cannot reshape array of size {n} into shape": f"dgamma or dbeta has {n} values, one per row: it was "
        "summed over axis 1; sum over axis 0 (the batch) instead"
    }
    with error_hints({**NUMPY_BROADCAST_HINTS, **(per_row if n != d else {})}):
        y, grads = expect_tuple(
            learner.probe(_forward_backward, x, gamma, beta, eps, dy, during=f"calling {FORWARD} then {BACKWARD}"),
            "forward + backward",
            2,
        )
    dx, dgamma, dbeta = expect_tuple(grads, BACKWARD, 3)
    y, dx = (expect_array(v, name, shape=x.shape, dtype=x.dtype) for v, name in ((y, "y"), (dx, "dx")))
    for name, value in (("dgamma", dgamma), ("dbeta", dbeta)):
        expect_array(value, name, dtype=x.dtype)
        if value.shape not in ((d,), np.shape(gamma)):
            summed_rows = (
                " It was summed over axis 1: sum over axis 0 (the batch) instead." if value.shape == (n,) else ""
            )
            raise Fail(
                f"`{name}` has shape {value.shape}; expected ({d},) or the shape of gamma "
                f"{np.shape(gamma)}.{summed_rows}"
            )
    return y, dx, np.reshape(dgamma, -1), np.reshape(dbeta, -1)


def judge_grads(learner, x, gamma, beta, eps, dy, which=("dx", "dgamma", "dbeta")) -> str:
    _, *got = grads_of(learner, x, gamma, beta, eps, dy)
    expected = layernorm_grads(x, np.reshape(gamma, -1), eps, dy)
    mistakes = {
        "dx": gradient_mistakes(x, np.reshape(gamma, -1), eps, dy, DX_FIXES),
        **parameter_gradient_mistakes(x, gamma, eps, dy),
    }
    details = [
        expect_close(actual, wanted, name=name, dtype=x.dtype, mistakes=mistakes[name])
        for name, actual, wanted in zip(("dx", "dgamma", "dbeta"), got, expected, strict=True)
        if name in which
    ]
    return details[0] if len(details) == 1 else "; ".join(f"{n} {d}" for n, d in zip(which, details, strict=True))


def case(seed, n=6, d=9):
    return (*random_case(seed, (n, d)), upstream_gradient(seed, (n, d)))


# -- the checks ---------------------------------------------------------------------------------
@checklist.check("the forward in this file still matches the float64 oracle")
def forward_still_right(learner):
    x, gamma, beta, _ = case(11)
    y = expect_array(forward_value(learner, x, gamma, beta, 1e-5), "y", shape=x.shape, dtype=x.dtype)
    mistakes = forward_mistakes(x, gamma, beta, 1e-5, NUMPY_FIXES)
    return expect_close(y, layernorm(x, gamma, beta, 1e-5), name="y", dtype=x.dtype, mistakes=mistakes)


@checklist.check("worked example 3 (eps=0, dy = ones): dbeta = [2, 2, 2], dgamma = [-2.449490, 0, 2.449490], dx = 0")
def worked_example_3(learner):
    x, gamma, dy = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]), np.ones(3), np.ones((2, 3))
    _, dx, dgamma, dbeta = grads_of(learner, x, gamma, np.zeros(3), 0.0, dy)
    wanted_dx, wanted_dgamma, wanted_dbeta = layernorm_grads(x, gamma, 0.0, dy)  # dgamma unrounded: ±sqrt(6)
    mistakes = parameter_gradient_mistakes(x, gamma, 0.0, dy)
    details = [
        expect_close(dbeta, wanted_dbeta, name="dbeta", dtype=x.dtype, mistakes=mistakes["dbeta"]),
        expect_close(dgamma, wanted_dgamma, name="dgamma", dtype=x.dtype, mistakes=mistakes["dgamma"]),
        expect_close(dx, wanted_dx, name="dx", dtype=x.dtype, mistakes=gradient_mistakes(x, gamma, 0.0, dy, DX_FIXES)),
    ]
    return "; ".join(f"{name} {detail}" for name, detail in zip(("dbeta", "dgamma", "dx"), details, strict=True))


def register_gradient_check(name: str, seed: int, gradient: str) -> None:
    """A check that one gradient matches the oracle, naming the classic mistakes of that gradient."""

    def matches(learner):
        x, gamma, beta, dy = case(seed)
        return judge_grads(learner, x, gamma, beta, 1e-5, dy, which=(gradient,))

    checklist.check(name)(matches)


register_gradient_check("dbeta matches the oracle (random dy)", 12, "dbeta")
register_gradient_check("dgamma matches the oracle (random dy)", 13, "dgamma")
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
    errors = {
        name: relative_error(a, n) for name, a, n in zip(("dx", "dgamma", "dbeta"), analytic, numeric, strict=True)
    }
    bad = ", ".join(f"{name} {error:.1e}" for name, error in errors.items() if error >= 1e-7)
    if bad:
        raise Fail(
            f"Your backward disagrees with the finite-difference gradient of your forward: relative error "
            f"{bad} (needs < 1e-7). If the forward is right, the analytic gradient is not."
        )
    return ", ".join(f"{name} {error:.0e}" for name, error in errors.items())


@checklist.check("gamma and beta shaped (1, D): dgamma and dbeta come back (D,) or (1, D), and right")
def row_shaped_params(learner):
    x, gamma, beta, dy = case(16)
    return judge_grads(learner, x, gamma.reshape(1, -1), beta.reshape(1, -1), 1e-5, dy)


@checklist.check("eps is honoured in the backward too (eps=0.5)")
def eps_honoured(learner):
    x, gamma, beta, dy = case(17, n=4, d=6)
    x *= 0.3  # a variance comparable with eps, so eps matters
    try:
        return judge_grads(learner, x, gamma, beta, 0.5, dy, which=("dx", "dgamma"))
    except Fail:
        y, dx, _, _ = grads_of(learner, x, gamma, beta, 0.5, dy)
        try:
            expect_close(
                y,
                layernorm(x, gamma, beta, 0.5),
                name="y",
                dtype=x.dtype,
                mistakes=forward_mistakes(x, gamma, beta, 0.5, NUMPY_FIXES),
            )
        except Fail as forward:
            raise Fail(f"The forward already differs at eps=0.5: {forward}") from None
        if np.allclose(dx, layernorm_grads(x, gamma, 1e-5, dy)[0], atol=1e-6):
            raise Fail(
                "The backward uses eps=1e-5 whatever the forward was given: cache rstd (or eps) "
                "in the forward and use it in the backward."
            ) from None
        raise


@checklist.check("dy and the cache are not modified (a second backward gives the same gradients)")
def nothing_mutated(learner):
    x, gamma, beta, dy = case(18)
    first, second, dy_after = expect_tuple(
        learner.probe(_backward_twice, x, gamma, beta, dy, during=f"calling {BACKWARD} twice"), "two backward calls", 3
    )
    if not (isinstance(dy_after, np.ndarray) and np.array_equal(dy_after, dy)):
        raise Fail("`dy` was modified in place: compute into new arrays (g = dy * gamma, not dy *= gamma).")
    names = ("dx", "dgamma", "dbeta")
    for name, a, b in zip(names, expect_tuple(first, BACKWARD, 3), expect_tuple(second, BACKWARD, 3), strict=True):
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
