"""NumPy steps: the fixes in NumPy's words, the "NumPy only" rule, and the "no loop over rows" probe."""

from __future__ import annotations

import ast
import sys

from tests.check.engine import Fail
from tests.check.kit.judging import error_hints, expect_array, expect_tuple

NUMPY_FIXES = {  # the catalogued mistakes a NumPy forward can make, and how to fix each in NumPy
    "eps-ignored": "use the `eps` parameter, not a constant",
    "no-eps": "use np.sqrt(var + eps)",
    "no-keepdims": "",
    "unbiased": "np.var's default ddof=0",
    "eps-outside": "use (x - mean) / sqrt(var + eps), not / (sqrt(var) + eps)",
    "batch-axis": "axis=1 (or -1), not axis=0",
    "whole": "use axis=-1 with keepdims=True",
    "beta-first": "compute gamma * xhat + beta",
    "swapped": "",
    "no-affine": "return gamma * xhat + beta",
    "no-gamma": "return gamma * xhat + beta",
    "no-beta": "return gamma * xhat + beta",
    "by-variance": "use np.sqrt(var + eps)",
    "not-centred": "xhat = (x - mean) / sqrt(var + eps)",
    "times-std": "check the rstd line, 1 / np.sqrt(var + eps)",
}
NUMPY_BROADCAST_HINTS = {
    "could not be broadcast": "Shapes do not broadcast: keep the mean and variance (N, 1) with keepdims=True, "
    "and gamma/beta (D,) or (1, D)",
}


def forward_value(learner, x, gamma, beta, *args, **kwargs):
    """y from the learner's layernorm_forward(x, gamma, beta, ...), unjudged; NumPy's broadcasting errors named."""
    with error_hints(NUMPY_BROADCAST_HINTS):
        y, _cache = expect_tuple(
            learner.call("layernorm_forward", x, gamma, beta, *args, **kwargs), "layernorm_forward", 2
        )
    return y


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
