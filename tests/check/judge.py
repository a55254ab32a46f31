"""Judging helpers shared by the checklists: float64 oracles, array checks, mistake diagnosis.

Everything here runs in the judge's process on plain data returned by the learner's process.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tests.check.engine import Fail
from tests.check.sandbox import LearnerError
from tests.check.wire import Foreign


# -- oracles (float64, written independently of the solutions) --------------------------------
def layernorm(x, gamma, beta, eps, axes=(-1,)):
    """LayerNorm over `axes` in float64: biased variance, eps inside the square root."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(gamma, np.float64) + np.asarray(beta, np.float64)


def layernorm_grads(x, gamma, eps, dy, axes=(-1,)):
    """(dx, dgamma, dbeta) of sum(dy * layernorm(x)) in float64; parameter grads summed over the rest."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    dxhat = dy * np.asarray(gamma, np.float64)
    dx = rstd * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    batch_axes = tuple(range(x.ndim - len(axes)))
    return dx, (dy * xhat).sum(axis=batch_axes), dy.sum(axis=batch_axes)


# -- what the learner returned ----------------------------------------------------------------
def expect_array(value, name: str, *, shape=None, dtype=None, shape_hint: str = "") -> np.ndarray:
    """`value` must be a finite NumPy array (of `shape`/`dtype` when given); otherwise Fail."""
    if value is None:
        raise Fail(f"`{name}` is None: a placeholder is still there, or a `return` is missing.")
    if isinstance(value, Foreign):
        raise Fail(f"`{name}` is a {value.type_name}; expected a NumPy array.")
    if not isinstance(value, np.ndarray):
        raise Fail(f"`{name}` is a {type(value).__name__} ({_brief(value)}); expected a NumPy array.")
    if shape is not None and tuple(value.shape) != tuple(shape):
        hint = f" {shape_hint}" if shape_hint else ""
        raise Fail(f"`{name}` has shape {tuple(value.shape)}, expected {tuple(shape)}.{hint}")
    if dtype is not None and value.dtype != np.dtype(dtype):
        raise Fail(f"`{name}` is {value.dtype}, expected {np.dtype(dtype)} (the input's dtype): "
                   "compute in it, or cast the result back with .astype(x.dtype).")
    if not np.issubdtype(value.dtype, np.number):
        raise Fail(f"`{name}` has dtype {value.dtype}; expected floating-point numbers.")
    if not np.all(np.isfinite(value)):
        raise Fail(f"`{name}` contains NaN or inf" + _nan_hint(value))
    return value


def expect_tuple(value, name: str, length: int) -> tuple:
    if value is None:
        raise Fail(f"{name} returned None: a placeholder is still there, or a `return` is missing.")
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise Fail(f"{name} must return a tuple of {length} values; it returned {_brief(value)}.")
    return tuple(value)


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _nan_hint(value) -> str:
    rows = np.argwhere(~np.isfinite(value))
    first = tuple(int(i) for i in rows[0])
    return f" (first at index {first}): a division by zero, or a square root of a negative number?"


# -- comparing with the oracle, naming the mistake -------------------------------------------
@dataclass
class Mistake:
    """A known wrong implementation: what it would output, and the hint that names it."""

    hint: str
    output: Callable[[], np.ndarray]


def expect_close(actual: np.ndarray, expected, *, name: str, atol: float, rtol: float = 0.0,
                 mistakes: list[Mistake] = ()) -> str:
    """Pass with "max error …" when `actual` ≈ `expected`, else Fail naming the closest known mistake."""
    expected = np.asarray(expected, dtype=np.float64)
    actual64 = np.asarray(actual, dtype=np.float64)
    if actual64.shape != expected.shape:
        raise Fail(f"`{name}` has shape {actual64.shape}, expected {expected.shape}.")
    error = np.abs(actual64 - expected)
    worst = float(error.max()) if error.size else 0.0
    if np.all(error <= atol + rtol * np.abs(expected)):
        return f"max error {worst:.1e}"
    for mistake in mistakes:
        wrong = np.asarray(mistake.output(), dtype=np.float64)
        if wrong.shape == actual64.shape and np.all(np.abs(actual64 - wrong) <= atol + rtol * np.abs(wrong) + 1e-12):
            raise Fail(f"{mistake.hint} (max error {worst:.2g} vs the float64 oracle)")
    where = tuple(int(i) for i in np.unravel_index(int(error.argmax()), error.shape))
    raise Fail(f"`{name}` differs from the float64 oracle: max error {worst:.2g} at index {where} "
               f"(got {actual64[where]:.6g}, expected {expected[where]:.6g}; tolerance {atol:.0e}).")


def relative_error(a, b) -> float:
    """CS231n's relative error: max |a-b| / max(|a|+|b|, 1e-8), elementwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@contextmanager
def error_hints(hints: dict[str, str]):
    """Turn a learner exception whose message contains a key into a Fail with that key's hint."""
    try:
        yield
    except LearnerError as error:
        for needle, hint in hints.items():
            if needle in str(error):
                where = f" (line {error.where[0]}: `{error.where[1]}`)" if error.where else ""
                raise Fail(f"{hint}{where} [{error}]") from None
        raise


def random_inputs(seed: int, n: int, d: int, dtype=np.float64):
    """x with per-row offsets and scales, and non-trivial gamma/beta (ones/zeros hide bugs)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=(n, 1)) + rng.normal(size=(n, 1)) * 2
    gamma = rng.uniform(0.5, 2.0, size=d) * rng.choice([-1.0, 1.0], size=d)
    beta = rng.normal(size=d)
    return x.astype(dtype), gamma.astype(dtype), beta.astype(dtype)
