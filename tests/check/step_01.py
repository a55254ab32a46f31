"""Step 01 checklist: LayerNorm forward in NumPy (seed: "LayerNorm (NumPy) Forward + Backward")."""

from __future__ import annotations

import sys

import numpy as np

from tests.check.engine import Checklist, Fail
from tests.check.judge import Mistake, error_hints, expect_array, expect_close, expect_tuple, layernorm, random_inputs

checklist = Checklist(step="01", title="LayerNorm forward in NumPy", import_timeout=10)

FORWARD = "layernorm_forward"
BROADCAST_HINTS = {
    "could not be broadcast": "Shapes do not broadcast: keep the mean and variance (N, 1) with keepdims=True, "
                              "and gamma/beta (D,) or (1, D)",
}


def forward_mistakes(x, gamma, beta, eps) -> list[Mistake]:
    """Outputs of the classic wrong forwards, in float64, each with the hint that names it."""
    x = np.asarray(x, np.float64)
    gamma, beta = np.reshape(gamma, -1), np.reshape(beta, -1)
    n, d = x.shape
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    mistakes = []
    if eps != 1e-5:
        mistakes.append(Mistake("The eps argument is ignored: the result is the one for eps=1e-5. Use the `eps` "
                                "parameter, not a constant", lambda: layernorm(x, gamma, beta, 1e-5)))
    if eps != 0:
        mistakes.append(Mistake("eps is not added: use np.sqrt(var + eps)", lambda: layernorm(x, gamma, beta, 0.0)))
    if n == d:  # without keepdims, (N,) statistics broadcast along the wrong axis of a square input
        mistakes.append(Mistake("The statistics lost their row axis: without keepdims=True a (N,) mean is "
                                "subtracted along columns",
                                lambda: (x - mean.T) / np.sqrt(var.T + eps) * gamma + beta))
    return mistakes + [
        Mistake("The variance looks unbiased (divided by D-1); LayerNorm uses the biased variance (divide by D, "
                "np.var's default ddof=0)",
                lambda: (x - mean) / np.sqrt(var * d / (d - 1) + eps) * gamma + beta),
        Mistake("eps looks outside the square root: use (x - mean) / sqrt(var + eps), not / (sqrt(var) + eps)",
                lambda: (x - mean) / (np.sqrt(var) + eps) * gamma + beta),
        Mistake("Normalised over the wrong axis: the statistics must be per row (axis=1 / axis=-1), "
                "not per column (axis=0)",
                lambda: layernorm(x, gamma, beta, eps, axes=(0,))),
        Mistake("Normalised over the whole array: take the mean and variance per row, with axis=-1 and keepdims=True",
                lambda: layernorm(x, gamma, beta, eps, axes=(0, 1))),
        Mistake("beta is added before scaling by gamma: compute gamma * xhat + beta", lambda: (xhat + beta) * gamma),
        Mistake("gamma and beta are swapped: gamma scales, beta shifts", lambda: xhat * beta + gamma),
        Mistake("gamma and beta are not applied: return gamma * xhat + beta", lambda: xhat),
        Mistake("Divided by the variance instead of the standard deviation: use np.sqrt(var + eps)",
                lambda: (x - mean) / (var + eps) * gamma + beta),
        Mistake("The mean is not subtracted: xhat = (x - mean) / sqrt(var + eps)",
                lambda: x / np.sqrt(var + eps) * gamma + beta),
        Mistake("Divided by the standard deviation twice, or used 1/sqrt where sqrt belongs: check the rstd line",
                lambda: (x - mean) * np.sqrt(var + eps) * gamma + beta),
    ]


def forward_output(learner, x, gamma, beta, **kwargs) -> np.ndarray:
    with error_hints(BROADCAST_HINTS):
        result = learner.call(FORWARD, x, gamma, beta, **kwargs)
    y, _cache = expect_tuple(result, FORWARD, 2)
    return expect_array(y, "y", shape=x.shape)


def forward_matches(learner, x, gamma, beta, eps, *, atol=1e-6, rtol=1e-6) -> str:
    """The learner's forward with this `eps` against the oracle, naming the mistake when it differs."""
    y = forward_output(learner, x, gamma, beta, eps=eps)
    return expect_close(y, layernorm(x, np.reshape(gamma, -1), np.reshape(beta, -1), eps), name="y",
                        atol=atol, rtol=rtol, mistakes=forward_mistakes(x, gamma, beta, eps))


@checklist.check("seed example 1 (eps=0): [[1, 2], [3, 4]] with gamma [2, 1], beta [0.5, -0.5] "
                 "gives [[-1.5, 0.5], [-1.5, 0.5]]")
def seed_example_1(learner):
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = forward_output(learner, x, np.array([2.0, 1.0]), np.array([0.5, -0.5]), eps=0.0)
    return expect_close(y, [[-1.5, 0.5], [-1.5, 0.5]], name="y", atol=1e-6,
                        mistakes=forward_mistakes(x, np.array([2.0, 1.0]), np.array([0.5, -0.5]), 0.0))


@checklist.check("seed example 2: a constant row [1, 1, 1] gives zeros, not NaN (eps at work)")
def seed_example_2(learner):
    y = forward_output(learner, np.ones((1, 3)), np.ones(3), np.zeros(3))
    return expect_close(y, np.zeros((1, 3)), name="y", atol=1e-6)


@checklist.check("seed examples 3-4 (eps=0): [[1, 2, 3], [2, 4, 6]] with identity and with non-trivial gamma/beta")
def seed_examples_3_4(learner):
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    forward_matches(learner, x, np.ones(3), np.zeros(3), 0.0)
    return forward_matches(learner, x, np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0]), 0.0)


@checklist.check("random inputs (N=7, D=13, random gamma/beta) match the float64 oracle")
def random_match(learner):
    x, gamma, beta = random_inputs(seed=1, n=7, d=13)
    return forward_matches(learner, x, gamma, beta, 1e-5)


@checklist.check("variance is the biased one (divides by D)")
def biased_variance(learner):
    x = np.array([[0.0, 2.0, 4.0, 10.0], [-3.0, 1.0, 1.0, 1.0]])
    return forward_matches(learner, x, np.ones(4), np.zeros(4), 0.0)


@checklist.check("gamma and beta shaped (1, D) work too")
def row_shaped_params(learner):
    x, gamma, beta = random_inputs(seed=2, n=5, d=6)
    try:
        return forward_matches(learner, x, gamma.reshape(1, -1), beta.reshape(1, -1), 1e-5)
    except Fail as failure:
        forward_matches(learner, x, gamma, beta, 1e-5)  # if (D,) fails too, that failure is the news
        raise Fail(f"(D,) parameters work but (1, D) ones do not: {failure} Reshape them with "
                   "np.reshape(gamma, (1, -1)), which fits both; never transpose them.") from None


@checklist.check("output dtype matches the input (float32 in, float32 out)")
def keeps_dtype(learner):
    x, gamma, beta = random_inputs(seed=3, n=4, d=8, dtype=np.float32)
    with error_hints(BROADCAST_HINTS):
        y, _ = expect_tuple(learner.call(FORWARD, x, gamma, beta), FORWARD, 2)
    expect_array(y, "y", shape=x.shape, dtype=np.float32)
    return expect_close(y, layernorm(x, gamma, beta, 1e-5), name="y", atol=1e-4)


@checklist.check("eps is honoured (eps=10 shrinks the output as it should)")
def eps_honoured(learner):
    x, gamma, beta = random_inputs(seed=4, n=3, d=5)
    return forward_matches(learner, x, gamma, beta, 10.0)


@checklist.check("each row is normalised on its own (a row's output does not depend on the others)")
def rows_independent(learner):
    x, gamma, beta = random_inputs(seed=5, n=6, d=6)  # square: a wrong axis cannot hide behind an error
    x[0] *= 1000.0
    full = forward_output(learner, x, gamma, beta)
    alone = forward_output(learner, x[2:3], gamma, beta)
    if not np.allclose(full[2], alone[0], atol=1e-6):
        raise Fail("Row 2's output changes when other rows change: the mean and variance must be taken "
                   "along axis=1 (each row's D features), with keepdims=True.")
    return expect_close(full, layernorm(x, gamma, beta, 1e-5), name="y", atol=1e-6, rtol=1e-6,
                        mistakes=forward_mistakes(x, gamma, beta, 1e-5))


def _forward_and_inputs_after(learner_module, x, gamma, beta):
    """Runs the forward on copies and sends y and the copies back, to see whether they were modified."""
    y, _ = learner_module.layernorm_forward(x, gamma, beta)
    return y, x, gamma, beta


@checklist.check("x, gamma and beta are not modified")
def inputs_untouched(learner):
    x, gamma, beta = random_inputs(seed=6, n=4, d=5)
    y, *after = expect_tuple(learner.probe(_forward_and_inputs_after, x, gamma, beta, during=f"calling {FORWARD}"),
                             "the forward", 4)
    expect_array(y, "y", shape=x.shape)  # nothing to judge until the forward computes something
    for name, before, now in zip(("x", "gamma", "beta"), (x, gamma, beta), after, strict=True):
        if not (isinstance(now, np.ndarray) and now.shape == before.shape and np.array_equal(now, before)):
            raise Fail(f"`{name}` was modified in place: work on a new array (x - mean, not x -= mean).")
    return ""


@checklist.check("numerically stable: float32 rows around 1e4 with unit spread")
def stable_large_mean(learner):
    rng = np.random.default_rng(7)
    x = (1e4 + rng.normal(size=(8, 256))).astype(np.float32)
    gamma, beta = np.ones(256, np.float32), np.zeros(256, np.float32)
    y = forward_output(learner, x, gamma, beta)
    expected = layernorm(x, gamma, beta, 1e-5)
    error = float(np.max(np.abs(np.asarray(y, np.float64) - expected)))
    if error > 5e-2:
        raise Fail(f"Max error {error:.2g} on rows around 1e4: E[x²] - E[x]² cancels catastrophically in "
                   "float32. Subtract the mean first, then average the squares: mean((x - mean)**2).")
    return f"max error {error:.1e}"


@checklist.check("uses NumPy only")
def numpy_only(learner):
    foreign = sorted(learner.imported_modules() - {"numpy"} - set(sys.stdlib_module_names))
    if foreign:
        raise Fail(f"The step asks for NumPy only; the file imports {', '.join(foreign)}.")
    return ""


def line_events(learner_module, function_name, arguments_list):
    """Lines executed inside the learner's file for each call (a loop over rows grows), and the last result."""
    target = learner_module.__file__
    counts, result = [], None
    for arguments in arguments_list:
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            if frame.f_code.co_filename == target:
                if event == "line":
                    count += 1
                return tracer
            return None

        sys.settrace(tracer)
        try:
            result = getattr(learner_module, function_name)(*arguments)
        finally:
            sys.settrace(None)
        counts.append(count)
    return counts, result


def expect_vectorised(probed, function_name) -> str:
    counts, result = probed
    first = result[0] if isinstance(result, (tuple, list)) and result else result
    expect_array(first, f"the first value {function_name} returns")  # a TODO is not "vectorised"
    small, large = counts
    if large > small + 16:  # 64 rows instead of 2: a per-row loop runs its body 62 more times
        raise Fail(f"{function_name} runs {small} lines for 2 rows but {large} for 64: it loops over rows in "
                   "Python. Use whole-array operations with axis=1, keepdims=True.")
    return f"{large} lines executed for 64 rows"


@checklist.check("vectorised: no Python loop over rows")
def vectorised(learner):
    cases = [random_inputs(seed=8, n=n, d=16) for n in (2, 64)]
    return expect_vectorised(learner.probe(line_events, FORWARD, cases, during=f"calling {FORWARD}"), FORWARD)
