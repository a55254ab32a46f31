"""Judging a hand-written LayerNorm backward (step 02), and naming what it gets wrong, term by term.

With xhat = (x - mean) * rstd and g = dy * gamma, a row's gradient has three terms:

    dx = rstd * g  -  rstd * mean(g)  -  rstd * xhat * mean(g * xhat)
         direct       the path through    the path through
         term         the mean            the variance

An upstream gradient can excite them one at a time (`probe_gradients`): a g with zero mean and nothing
along xhat meets the direct term alone (dx = rstd * g); a g constant along each row is cancelled by the path
through the mean (dx = 0); a g along xhat is all but cancelled by the path through the variance
(dx = rstd * g * eps / (var + eps)). `name_dx` names the catalogued wrong backward that matches at every
probe, or else the first term that is off, by the factor it is off by.

A check's failing gradient is named from one diagnostic run (`backward_run`: the learner's forward and
backward at eps=0.1 for a random dy and the three term probes), so every check that a mistake fails gives the
same hint, whatever its own input can tell apart.
"""

from __future__ import annotations

import numpy as np

from tests.check.engine import Fail
from tests.check.kit.judging import (
    Mistake,
    expect_array,
    expect_close,
    expect_tuple,
    known_mistake,
    layernorm,
    layernorm_grads,
    random_case,
    tolerance,
)
from tests.check.kit.mistakes import (
    GRADIENT_MISTAKES,
    NO_FIX,
    Fixes,
    MistakeKey,
    forward_mistakes,
    gradient_mistakes,
    parameter_gradient_mistakes,
    with_fix,
)
from tests.check.kit.numpy_side import NUMPY_FIXES, forward_diagnosis
from tests.check.sandbox import LearnerError, LearnerOverLimit

FORWARD, BACKWARD = "layernorm_forward", "layernorm_backward"
GRADIENTS = ("dx", "dgamma", "dbeta")
PROBES = ("random", "direct", "mean", "variance")
WHERE = ", on the diagnostic dy"  # where a named mistake's error was measured
TERMS = {
    "direct": "The direct term rstd * g",
    "mean": "The path through the mean, -rstd * mean(g),",
    "variance": "The path through the variance, -rstd * xhat * mean(g * xhat),",
}
# What each term probe's dx must be: (where g points, what dx must be, dx = k * rstd * g for k =)
EXPECTED = {
    "direct": ("for a g = dy * gamma of zero mean and nothing along xhat it acts alone", "dx = rstd * g", "1"),
    "mean": ("for g = dy * gamma constant along each row it must cancel the direct term", "dx = 0", "0"),
    "variance": (
        "for g = dy * gamma along xhat it must all but cancel the direct term",
        "dx = rstd * g * eps / (var + eps)",
        "eps / (var + eps)",
    ),
}


class _Rows:
    """The row statistics of x (float64), as the forward computes them."""

    def __init__(self, x, eps):
        self.x, self.eps = np.asarray(x, np.float64), eps
        self.n, self.d = self.x.shape
        self.mean = self.x.mean(axis=-1, keepdims=True)
        self.var = ((self.x - self.mean) ** 2).mean(axis=-1, keepdims=True)
        self.rstd = 1.0 / np.sqrt(self.var + eps)
        self.xhat = (self.x - self.mean) * self.rstd
        self.m2 = (self.xhat**2).mean(axis=-1, keepdims=True)  # var / (var + eps)


def probe_gradients(x, gamma, eps, seed: int) -> dict[str, np.ndarray]:
    """probe name -> the upstream gradient dy: a random one, and one that excites each term of dx alone.

    `gamma` must have no zero: dy = g / gamma.
    """
    rows, rng = _Rows(x, eps), np.random.default_rng((seed, 2))  # not random_case's stream: x's own draws

    def per_row():
        return rng.uniform(0.5, 2.0, (rows.n, 1)) * rng.choice([-1.0, 1.0], (rows.n, 1))

    direct = rng.normal(size=rows.x.shape)
    direct -= direct.mean(axis=-1, keepdims=True)
    direct -= rows.xhat * (direct * rows.xhat).mean(axis=-1, keepdims=True) / rows.m2
    g = {"direct": direct, "mean": per_row() * np.ones_like(rows.x), "variance": per_row() * rows.xhat}
    gamma = np.reshape(np.asarray(gamma, np.float64), -1)
    return {"random": rng.normal(size=rows.x.shape), **{name: value / gamma for name, value in g.items()}}


def name_dx(x, gamma, eps, dys: dict, dxs: dict, fixes: Fixes) -> str | None:
    """The hint naming what the learner's dx (`dxs`, one per probe of `dys`) gets wrong, or None when it is right
    at every probe."""
    gamma = np.reshape(np.asarray(gamma, np.float64), -1)
    expected = {probe: layernorm_grads(x, gamma, eps, dys[probe])[0] for probe in PROBES}
    per_probe = [gradient_mistakes(x, gamma, eps, dys[probe], fixes) for probe in PROBES]
    everywhere = [  # a catalogued backward is named only where it explains every probe at once
        Mistake(variants[0].hint, lambda variants=variants: np.concatenate([m.output() for m in variants]))
        for variants in zip(*per_probe, strict=True)
    ]
    actual = np.concatenate([np.asarray(dxs[probe], np.float64) for probe in PROBES])
    named = known_mistake(
        actual, np.concatenate([expected[p] for p in PROBES]), dtype=x.dtype, mistakes=everywhere, where=WHERE
    )
    if named:
        return named
    rows, gamma_row = _Rows(x, eps), gamma.reshape(1, -1)
    for term in ("direct", "mean", "variance"):
        verdict = _term_verdict(term, rows, dys[term] * gamma_row, dxs[term], expected[term], x.dtype, fixes)
        if verdict:
            return verdict
    return None


def _candidates(term: str, rows: _Rows) -> list[tuple[np.ndarray, str]]:
    """(the factor k in dx = k * rstd * g at this term's probe, the catalogue key of the mistake that gives it)."""
    m2, d, n, rstd = rows.m2, rows.d, rows.n, rows.rstd
    if term == "direct":  # right: k = 1
        return [
            (1 / rstd, MistakeKey.NO_RSTD),
            (1 / rstd**2, MistakeKey.TIMES_STD),
            (rstd, MistakeKey.RSTD_TWICE),
            (np.sqrt((rows.var + rows.eps) / rows.var), MistakeKey.NO_EPS),
            (-np.ones_like(rstd), MistakeKey.SIGN),
        ]
    if term == "mean":  # right: k = 0
        return [
            (np.ones_like(rstd), MistakeKey.NO_MEAN_PATH),
            (2 * np.ones_like(rstd), MistakeKey.SIGN_MEAN_PATH),
            (1 - d * np.ones_like(rstd), MistakeKey.MEAN_PATH_SUM),
            (1 - d / n * np.ones_like(rstd), MistakeKey.ROWS_COUNT),
        ]
    return [  # the variance: right k = 1 - m2
        (np.ones_like(rstd), MistakeKey.NO_VARIANCE_PATH),
        (1 + m2, MistakeKey.SIGN_VARIANCE_PATH),
        (1 - d * m2, MistakeKey.VARIANCE_PATH_SUM),
        (1 - d / n * m2, MistakeKey.ROWS_COUNT),
        (1 - m2 / rstd**2, MistakeKey.VARIANCE_PATH_CENTRED),
    ]


def _term_verdict(term, rows: _Rows, g, dx, expected, dtype, fixes) -> str | None:
    """None when this probe's dx is right; else what the term does wrong, by the factor k in dx = k * rstd * g."""
    dx, limit = np.asarray(dx, np.float64), tolerance(dtype, rows.d)
    if np.all(np.abs(dx - expected) <= limit + limit * np.abs(expected)):
        return None
    basis = rows.rstd * g
    k = (dx * basis).sum(axis=-1, keepdims=True) / (basis * basis).sum(axis=-1, keepdims=True)
    residual = np.linalg.norm(dx - k * basis, axis=-1) / np.linalg.norm(basis, axis=-1)
    where, right, right_k = EXPECTED[term]
    if not np.all(residual < 1e-3):
        return f"{TERMS[term]} is off: {where}, {right}; yours is not a multiple of g = dy * gamma there."
    for factor, key in _candidates(term, rows):
        if np.allclose(k, factor, rtol=1e-3, atol=1e-6):
            return with_fix(GRADIENT_MISTAKES[key][0], fixes.get(key, NO_FIX))
    if right_k not in ("0", "1"):  # a k that differs row by row: its values
        right_k += " = " + _span((expected * basis).sum(axis=-1) / (basis * basis).sum(axis=-1))
    return (
        f"{TERMS[term]} is off: {where}, {right}; yours gives dx = k * rstd * g with k = {_span(k)} (right: {right_k})."
    )


def _span(values) -> str:
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:.3g}" if np.isclose(low, high, rtol=1e-3, atol=1e-9) else f"{low:.3g} to {high:.3g}"


def name_parameter_gradient(name: str, x, gamma, eps, dy, actual) -> str | None:
    """The hint naming what the learner's dgamma or dbeta (`name`) gets wrong for this `dy`, or None."""
    _, dgamma, dbeta = layernorm_grads(x, np.reshape(gamma, -1), eps, dy)
    expected = {"dgamma": dgamma, "dbeta": dbeta}[name]
    mistakes = parameter_gradient_mistakes(x, gamma, eps, dy)[name]
    return known_mistake(np.reshape(actual, -1), expected, dtype=x.dtype, mistakes=mistakes, where=WHERE)


# -- the learner's backward (step 02) --------------------------------------------------------------
NUMPY_DX_FIXES = {  # the catalogued wrong backwards, and how to fix each in NumPy
    MistakeKey.NO_MEAN_PATH: "subtract mean(g) along the row (g = dy * gamma)",
    MistakeKey.NO_VARIANCE_PATH: "subtract xhat * mean(g * xhat) along the row",
    MistakeKey.CONSTANT_STATISTICS: NO_FIX,
    MistakeKey.IGNORES_GAMMA: NO_FIX,
    MistakeKey.SIGN: NO_FIX,
    MistakeKey.BATCH_AXIS: "axis=1, keepdims=True",
    MistakeKey.UNBIASED: NO_FIX,
    MistakeKey.SIGN_MEAN_PATH: NO_FIX,
    MistakeKey.SIGN_VARIANCE_PATH: NO_FIX,
    MistakeKey.MEAN_PATH_SUM: "g.mean(axis=1, keepdims=True)",
    MistakeKey.VARIANCE_PATH_SUM: "(g * xhat).mean(axis=1, keepdims=True)",
    MistakeKey.ROWS_COUNT: "D is x.shape[1]; x.shape[0] is the number of rows",
    MistakeKey.NO_RSTD: NO_FIX,
    MistakeKey.TIMES_STD: NO_FIX,
    MistakeKey.RSTD_TWICE: NO_FIX,
    MistakeKey.VARIANCE_PATH_CENTRED: NO_FIX,
    MistakeKey.CORRECTIONS_IGNORE_GAMMA: NO_FIX,
    MistakeKey.DIRECT_IGNORES_GAMMA: NO_FIX,
    MistakeKey.GAMMA_TWICE: NO_FIX,
    MistakeKey.NO_EPS: NO_FIX,
    MistakeKey.EPS_IGNORED: NO_FIX,
}
# Where the forward is wrong, the gradients cannot be judged: they are reported once, under the forward's check.
FORWARD_WRONG = "the forward differs from the float64 oracle"
DIAGNOSTIC_EPS = 0.1  # of the order of the variances: an eps left out or replaced changes dx plainly


def _forward_backward(learner_module, x, gamma, beta, eps, dy):
    """y from the learner's forward, then (dx, dgamma, dbeta) from their backward on its cache."""
    y, cache = learner_module.layernorm_forward(x, gamma, beta, eps)
    return y, learner_module.layernorm_backward(dy, cache)


def _forward_backward_each(learner_module, x, gamma, beta, eps, dys):
    """(y, grads) for each dy, each from a forward of its own on fresh inputs: a backward that mutates its cache
    (or the inputs the cache holds) is right on each call, and is left to the check that looks for it."""
    return [_forward_backward(learner_module, x.copy(), gamma.copy(), beta.copy(), eps, dy) for dy in dys]


def validated(returned, x, gamma, what: str):
    """(y, dx, dgamma, dbeta) from what a forward + backward returned, checked for type and shape."""
    n, d = x.shape
    y, grads = expect_tuple(returned, what, 2)
    dx, dgamma, dbeta = expect_tuple(grads, BACKWARD, 3)
    y, dx = (expect_array(v, name, shape=x.shape, dtype=x.dtype) for v, name in ((y, "y"), (dx, "dx")))
    for name, value in (("dgamma", dgamma), ("dbeta", dbeta)):
        if isinstance(value, (float, np.generic)) or (isinstance(value, np.ndarray) and value.ndim == 0):
            raise Fail(f"`{name}` is a single number: it was summed over every axis; sum over axis 0 (the batch) only.")
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


def forward_right(learner, y, x, gamma, beta, eps) -> None:
    """Fail (cause FORWARD_WRONG) when the y this forward gave is wrong: its gradients cannot be judged."""
    gamma, beta = np.reshape(gamma, -1), np.reshape(beta, -1)
    try:
        expect_close(
            y,
            layernorm(x, gamma, beta, eps),
            name="y",
            dtype=x.dtype,
            mistakes=forward_mistakes(x, gamma, beta, eps, NUMPY_FIXES),
        )
    except Fail as failure:
        raise Fail(forward_diagnosis(learner) or str(failure), cause=FORWARD_WRONG) from None


def grads_of(learner, x, gamma, beta, eps, dy):
    """The learner's (y, dx, dgamma, dbeta), checked for type and shape, with y right."""
    returned = learner.probe(_forward_backward, x, gamma, beta, eps, dy, during=f"calling {FORWARD} then {BACKWARD}")
    y, dx, dgamma, dbeta = validated(returned, x, gamma, "forward + backward")
    forward_right(learner, y, x, gamma, beta, eps)
    return y, dx, dgamma, dbeta


class BackwardRun:
    """The learner's gradients on the diagnostic input, and the hints that name what each gets wrong."""

    def __init__(self, learner):
        self.x, self.gamma, self.beta = random_case(22, (6, 9))
        self.dys = probe_gradients(self.x, self.gamma, DIAGNOSTIC_EPS, seed=22)
        returned = learner.probe(
            _forward_backward_each,
            self.x,
            self.gamma,
            self.beta,
            DIAGNOSTIC_EPS,
            [self.dys[p] for p in PROBES],
            during=f"calling {FORWARD} then {BACKWARD}",
        )
        if not isinstance(returned, list) or len(returned) != len(PROBES):
            raise Fail(f"{FORWARD} then {BACKWARD} did not return a result for every upstream gradient.")
        self.outputs = {}
        for probe, value in zip(PROBES, returned, strict=True):
            y, *grads = validated(value, self.x, self.gamma, "forward + backward")
            forward_right(learner, y, self.x, self.gamma, self.beta, DIAGNOSTIC_EPS)
            self.outputs[probe] = dict(zip(GRADIENTS, grads, strict=True))
        random_dy = self.dys["random"]
        names = {
            "dx": name_dx(
                self.x,
                self.gamma,
                DIAGNOSTIC_EPS,
                self.dys,
                {p: self.outputs[p]["dx"] for p in PROBES},
                NUMPY_DX_FIXES,
            ),
            **{
                name: name_parameter_gradient(
                    name, self.x, self.gamma, DIAGNOSTIC_EPS, random_dy, self.outputs["random"][name]
                )
                for name in ("dgamma", "dbeta")
            },
        }
        self.names = {name: hint for name, hint in names.items() if hint}

    def expected_dx(self, probe: str) -> np.ndarray:
        return layernorm_grads(self.x, self.gamma, DIAGNOSTIC_EPS, self.dys[probe])[0]


def backward_run(learner) -> BackwardRun:
    """The diagnostic run (once per run; its failure, a learner's exception or a wrong forward, raised each time)."""
    if "backward run" not in learner.memo:
        try:
            learner.memo["backward run"] = BackwardRun(learner)
        except (Fail, LearnerError) as failure:
            learner.memo["backward run"] = failure
    run = learner.memo["backward run"]
    if isinstance(run, Exception):
        raise run
    return run


def named(learner, gradient: str) -> str | None:
    """The hint naming what `gradient` gets wrong on the diagnostic input, or None."""
    try:
        return backward_run(learner).names.get(gradient)
    except LearnerOverLimit:  # it would happen again: the check reports it, and the later ones are not run
        raise
    except (Fail, LearnerError):  # the check's own message says what went wrong
        return None


def judge(learner, gradient: str, actual, x, gamma, eps, dy) -> str:
    """One gradient against the oracle; when it differs, the hint names the mistake."""
    flat_gamma = np.reshape(gamma, -1)
    expected = dict(zip(GRADIENTS, layernorm_grads(x, flat_gamma, eps, dy), strict=True))[gradient]
    mistakes = (
        gradient_mistakes(x, flat_gamma, eps, dy, NUMPY_DX_FIXES)
        if gradient == "dx"
        else parameter_gradient_mistakes(x, gamma, eps, dy)[gradient]
    )
    try:
        return expect_close(actual, expected, name=gradient, dtype=x.dtype, mistakes=mistakes)
    except Fail as failure:
        raise Fail(named(learner, gradient) or str(failure)) from None


def judge_grads(learner, x, gamma, beta, eps, dy, which=GRADIENTS) -> str:
    _, *got = grads_of(learner, x, gamma, beta, eps, dy)
    details = [
        judge(learner, name, actual, x, gamma, eps, dy)
        for name, actual in zip(GRADIENTS, got, strict=True)
        if name in which
    ]
    return details[0] if len(details) == 1 else "; ".join(f"{n} {d}" for n, d in zip(which, details, strict=True))
