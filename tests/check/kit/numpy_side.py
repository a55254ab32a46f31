"""NumPy steps: the fixes in NumPy's words, the learner's forward judged and its mistake named, the "NumPy
only" rule, and the "no loop over rows" probe."""

from __future__ import annotations

import ast
import sys

import numpy as np

from tests.check.engine import Fail
from tests.check.kit.judging import (
    expect_array,
    expect_close,
    expect_tuple,
    known_mistake,
    layernorm,
    random_case,
    tolerance,
)
from tests.check.kit.mistakes import NO_FIX, MistakeKey, forward_mistakes
from tests.check.sandbox import LearnerError, LearnerOverLimit

NUMPY_FIXES = {  # the catalogued mistakes a NumPy forward can make, and how to fix each in NumPy
    MistakeKey.EPS_IGNORED: "use the `eps` parameter, not a constant",
    MistakeKey.NO_EPS: "use np.sqrt(var + eps)",
    MistakeKey.NO_KEEPDIMS: NO_FIX,
    MistakeKey.UNBIASED: "np.var's default ddof=0",
    MistakeKey.UNBIASED_EPS_OUTSIDE: "use np.sqrt(x.var(axis=1, keepdims=True) + eps), with var's default ddof=0",
    MistakeKey.EPS_OUTSIDE: "use (x - mean) / sqrt(var + eps), not / (sqrt(var) + eps)",
    MistakeKey.BATCH_AXIS: "axis=1 (or -1), not axis=0",
    MistakeKey.WHOLE: "use axis=-1 with keepdims=True",
    MistakeKey.BETA_FIRST: "compute gamma * xhat + beta",
    MistakeKey.SWAPPED: NO_FIX,
    MistakeKey.NO_AFFINE: "return gamma * xhat + beta",
    MistakeKey.NO_GAMMA: "return gamma * xhat + beta",
    MistakeKey.NO_BETA: "return gamma * xhat + beta",
    MistakeKey.BY_VARIANCE: "use np.sqrt(var + eps)",
    MistakeKey.NOT_CENTRED: "xhat = (x - mean) / sqrt(var + eps)",
    MistakeKey.TIMES_STD: "check the rstd line, 1 / np.sqrt(var + eps)",
    MistakeKey.RMS: "xhat = (x - mean) / np.sqrt(var + eps) with var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
    MistakeKey.VAR_UNCENTRED: "var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
    MistakeKey.SUM_NOT_MEAN: "use .mean(axis=1, keepdims=True), or divide the sum by D = x.shape[1]",
    MistakeKey.ROWS_COUNT: "D is x.shape[1]; x.shape[0] is the number of rows",
    MistakeKey.VAR_BATCH_AXIS: "axis=1 for the variance too",
    MistakeKey.PARAMS_PER_ROW: "np.reshape(gamma, (1, -1)) broadcasts over the rows",
    MistakeKey.BY_MEAN_DEVIATION: "np.sqrt(var + eps) with var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
    MistakeKey.DIVIDES_BY_GAMMA: "return gamma * xhat + beta",
}
FORWARD = "layernorm_forward"


def forward_value(learner, x, gamma, beta, *args, **kwargs):
    """y from the learner's layernorm_forward(x, gamma, beta, ...), unjudged."""
    returned = learner.call(FORWARD, x, gamma, beta, *args, **kwargs)
    if isinstance(returned, np.ndarray):
        raise Fail(
            f"{FORWARD} must return a tuple of 2 values, (y, cache); it returns y alone. The cache holds what the "
            "backward needs."
        )
    y, cache = expect_tuple(returned, FORWARD, 2)
    if isinstance(y, (tuple, list)) and isinstance(cache, np.ndarray):
        raise Fail(f"{FORWARD} returns (cache, y); it must return (y, cache), y first.")
    return y


def forward_output(learner, x, gamma, beta, **kwargs) -> np.ndarray:
    """The learner's y for this input, checked for type, shape and dtype (the input's)."""
    return expect_array(forward_value(learner, x, gamma, beta, **kwargs), "y", shape=x.shape, dtype=x.dtype)


def forward_matches(learner, x, gamma, beta, eps, *, expected=None, atol=None) -> str:
    """The learner's forward with this `eps` (None: its default, 1e-5) against the oracle; when it differs, the hint
    names the mistake.

    The mistake is named from an input where every catalogued mistake shows (`forward_diagnosis`), so every
    check that a mistake fails gives the same hint, whatever its own input can tell apart.
    """
    y = forward_output(learner, x, gamma, beta, **({} if eps is None else {"eps": eps}))
    gamma, beta, eps = np.reshape(gamma, -1), np.reshape(beta, -1), 1e-5 if eps is None else eps
    expected = layernorm(x, gamma, beta, eps) if expected is None else expected
    try:
        return expect_close(
            y, expected, name="y", dtype=x.dtype, atol=atol, mistakes=forward_mistakes(x, gamma, beta, eps, NUMPY_FIXES)
        )
    except Fail as failure:
        named = forward_diagnosis(learner)
        raise (Fail(named) if named else failure) from None


def forward_diagnosis(learner) -> str | None:
    """The catalogued mistake the learner's forward makes on random rows with eps=0.1, where each one gives its
    own output, or else the part of gamma * xhat + beta that is off; None where the forward is right there, or
    wrong in no way it can name (once per run)."""
    if "forward diagnosis" not in learner.memo:
        x, gamma, beta = random_case(21, (7, 13))
        eps = 0.1  # of the order of the variances: eps placed wrong, or ignored, shows plainly
        try:
            y, expected = forward_output(learner, x, gamma, beta, eps=eps), layernorm(x, gamma, beta, eps)
            named = known_mistake(
                y,
                expected,
                dtype=x.dtype,
                mistakes=forward_mistakes(x, gamma, beta, eps, NUMPY_FIXES),
                where=", on random rows with eps=0.1",
            )
            limit = tolerance(x.dtype, x.shape[-1])
            if named is None and not np.allclose(y, expected, rtol=limit, atol=limit):
                named = _off_part(y, x, gamma, beta, eps)
        except LearnerOverLimit:  # it would happen again: the check reports it, and the later ones are not run
            raise
        except (Fail, LearnerError):  # the checks' own messages say what went wrong
            named = None
        learner.memo["forward diagnosis"] = named
    return learner.memo["forward diagnosis"]


def imported_modules(source: str) -> set[str]:
    """Top-level names of the modules a file imports (for rules like "NumPy only")."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def numpy_only(learner) -> str:
    learner.ensure_loaded()  # a file that does not import (or parse) has nothing to judge
    foreign = sorted(imported_modules(learner.source) - {"numpy"} - set(sys.stdlib_module_names))
    if foreign:
        raise Fail(f"The step asks for NumPy only; the file imports {', '.join(foreign)}.")
    return ""


def line_events(learner_module, function_name, arguments_list):
    """(probe) Lines executed inside the learner's file for each call, and the last result."""
    target = learner_module.__file__
    counts, result = [], None
    for arguments in arguments_list:
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            if frame.f_code.co_filename != target:
                return None
            count += event == "line"
            return tracer

        sys.settrace(tracer)
        try:
            result = getattr(learner_module, function_name)(*arguments)
        finally:
            sys.settrace(None)
        counts.append(count)
    return counts, result


def expect_vectorised(probed, function_name) -> str:
    """Fail when 64 rows execute many more lines than 2 rows: a Python loop over rows."""
    counts, result = probed
    first = result[0] if isinstance(result, (tuple, list)) and result else result
    if first is None:  # a TODO is not "vectorised"
        raise Fail(
            f"`{function_name}` returned None as its first value: a placeholder is still there, or a `return` "
            "is missing.",
            cause=f"{function_name} returned None",
        )
    expect_array(first, f"the first value `{function_name}` returns")
    small, large = counts
    if large > small + 16:  # 64 rows instead of 2: a per-row loop runs its body 62 more times
        raise Fail(
            f"{function_name} runs {small} lines for 2 rows but {large} for 64: it loops over rows in "
            "Python. Use whole-array operations with axis=1, keepdims=True."
        )
    return f"{large} lines executed for 64 rows"


def _off_part(y, x, gamma, beta, eps) -> str | None:
    """Which part of y = gamma * xhat + beta is off, for a wrong forward no catalogued mistake explains, or None.

    Undoing gamma and beta must leave each row an affine function of the true xhat with slope 1 and offset 0
    (else the centring or the scale is off); failing that, each feature must be an affine function of xhat
    (else the parameters are applied wrong).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean = x.mean(axis=1, keepdims=True)
    xhat = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    z = (y - beta) / gamma  # the learner's xhat, if gamma and beta are applied as they should be
    slope, offset = _affine_fit(xhat, z, axis=1)
    if _fits(xhat, z, slope, offset):
        if np.max(np.abs(offset)) > 1e-6:
            return (
                "The centring is off: (y - beta) / gamma does not average to 0 along each row; xhat = (x - mean) / "
                "sqrt(var + eps) with mean = x.mean(axis=1, keepdims=True)"
            )
        if np.max(np.abs(slope - 1)) > 1e-6:
            return (
                f"The scale is off: each row must be divided by its own standard deviation sqrt(var + eps), var = "
                f"mean((x - mean)²) along the row; yours come out {float(slope.min()):.3g} to "
                f"{float(slope.max()):.3g} times that"
            )
    slope, offset = _affine_fit(xhat, y, axis=0)
    if _fits(xhat, y, slope, offset) and np.all(np.abs(slope) > 1e-3):
        return (
            "xhat is right, but y is not gamma * xhat + beta: a feature's scale or shift is not its gamma or beta "
            "(check how the parameters are reshaped and applied)"
        )
    return None


def _affine_fit(xhat, values, axis: int):
    """(slope, offset) of the least-squares fit values ≈ slope * xhat + offset along `axis`."""
    centred = xhat - xhat.mean(axis=axis, keepdims=True)
    slope = (centred * values).sum(axis=axis, keepdims=True) / (centred**2).sum(axis=axis, keepdims=True)
    return slope, values.mean(axis=axis, keepdims=True) - slope * xhat.mean(axis=axis, keepdims=True)


def _fits(xhat, values, slope, offset) -> bool:
    return bool(np.max(np.abs(values - (slope * xhat + offset))) <= 1e-6 * max(1.0, float(np.max(np.abs(values)))))
