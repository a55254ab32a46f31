"""Judging plain data: the float64 oracles, random inputs, and validators that name what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tests.check.engine import Fail
from tests.check.sandbox import LearnerError
from tests.check.wire import Foreign, TensorRecord, describe_type


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
    dx = rstd * (dxhat - dxhat.mean(axis=axes, keepdims=True) - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    batch_axes = tuple(range(x.ndim - len(axes)))
    return dx, (dy * xhat).sum(axis=batch_axes), dy.sum(axis=batch_axes)


# -- inputs -------------------------------------------------------------------------------------
def random_case(seed: int, shape, normalized_shape=None, dtype="float64", scales=(0.5, 3.0)):
    """(x, gamma, beta): x with its own offset and scale per normalised group; random gamma/beta.

    gamma mixes signs and beta is non-zero: ones and zeros hide swapped or missing parameters.
    """
    normalized_shape = tuple(normalized_shape or shape[-1:])
    rng = np.random.default_rng(seed)
    group = tuple(shape[: len(shape) - len(normalized_shape)]) + (1,) * len(normalized_shape)
    x = rng.normal(size=shape) * rng.uniform(*scales, size=group) + rng.normal(size=group) * 2
    gamma = rng.uniform(0.5, 2.0, size=normalized_shape) * rng.choice([-1.0, 1.0], size=normalized_shape)
    beta = rng.normal(size=normalized_shape)
    return x.astype(dtype), gamma.astype(dtype), beta.astype(dtype)


def upstream_gradient(seed: int, shape, dtype="float64") -> np.ndarray:
    """A random dL/dy: an all-ones dy hides most backward bugs."""
    return np.random.default_rng(seed + 100).normal(size=shape).astype(dtype)


# -- what the learner returned ----------------------------------------------------------------
KINDS = {"numpy": "a NumPy array", "torch": "a torch.Tensor", "max": "a max.experimental.tensor.Tensor"}


def type_name(value) -> str:
    """What a value that crossed the wire is, in the learner's terms ("torch.Tensor", "list", "NoneType")."""
    return value.type_name if isinstance(value, (Foreign, TensorRecord)) else describe_type(value)


def expect_array(value, name: str, *, kind="numpy", shape=None, dtype=None, shape_hint="") -> np.ndarray:
    """The values of `value`, which must be a finite array or tensor of `kind` (and `shape`, `dtype`)."""
    if value is None:
        # the cause (`name` is None) groups the checks one placeholder fails: the report shows it once
        raise Fail(
            f"`{name}` is None: a placeholder is still there, or a `return` is missing.", cause=f"`{name}` is None"
        )
    got = value.framework if isinstance(value, TensorRecord) else "numpy" if isinstance(value, np.ndarray) else None
    if got != kind:
        plain = not isinstance(value, (Foreign, TensorRecord, np.ndarray))
        what = type_name(value) + (f" ({_brief(value)})" if plain else "")
        raise Fail(f"`{name}` is a {what}; expected {KINDS[kind]}.")
    values, actual = (value.values, value.dtype) if got != "numpy" else (value, value.dtype.name)
    if shape is not None and tuple(values.shape) != tuple(shape):
        hint = f" {shape_hint}" if shape_hint else ""
        raise Fail(f"`{name}` has shape {tuple(values.shape)}, expected {tuple(shape)}.{hint}")
    wanted = None if dtype is None else dtype_name(dtype)
    if wanted is not None and actual != wanted:
        cast = ".astype(x.dtype)" if kind == "numpy" else "y.to(x.dtype)" if kind == "torch" else "y.cast(x.dtype)"
        raise Fail(
            f"`{name}` is {actual}, expected {wanted} (the input's dtype): compute in it, or cast the "
            f"result back with {cast}."
        )
    if not np.issubdtype(values.dtype, np.number):
        raise Fail(f"`{name}` has dtype {values.dtype}; expected floating-point numbers.")
    if not np.all(np.isfinite(values)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise Fail(
            f"`{name}` contains NaN or inf (first at index {first}): a division by zero, or a square root "
            "of a negative number?"
        )
    return values


def expect_tuple(value, name: str, length: int) -> tuple:
    if value is None:
        message = f"{name} returned None: a placeholder is still there, or a `return` is missing."
        raise Fail(message, cause=f"{name} returned None")
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise Fail(f"{name} must return a tuple of {length} values; it returned {_brief(value)}.")
    return tuple(value)


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


@dataclass
class Mistake:
    """A known wrong implementation: what it would output, and the hint that names it."""

    hint: str
    output: Callable[[], np.ndarray]


# The relative accuracy a correct LayerNorm reaches when it computes in the input's dtype, for D up to
# about 1024 (larger D lets rounding add up: `tolerance` widens by sqrt(D / 1024)).
PRECISION = {"float64": 1e-10, "float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}
FLOAT32_IN_FLOAT64 = (
    "float64 in, but the result has float32 precision: part of the computation runs in float32 (an "
    "astype(np.float32) or .float(), or a float32 constant or parameter?)"
)
FLOAT16_IN_FLOAT64 = (
    "float64 in, but the result has float16 precision: part of the computation runs in float16 (an "
    "astype(np.float16) or .half()?)"
)


def dtype_name(dtype) -> str:
    return dtype if dtype == "bfloat16" else np.dtype(dtype).name


def tolerance(dtype, size: int = 1) -> float:
    """Absolute and relative tolerance for outputs computed from `dtype` inputs over `size` features."""
    return PRECISION[dtype_name(dtype)] * max(1.0, float(np.sqrt(size / 1024)))


def representable(array, dtype) -> np.ndarray:
    """`array` as float32 values that `dtype` holds exactly: bfloat16 keeps 8 significant bits (rounded to nearest,
    ties to even), float32 all of them. Inputs made so survive the learner's cast unchanged, whatever its rounding,
    and the oracle sees exactly what the learner's code saw."""
    values = np.ascontiguousarray(array, dtype=np.float32)
    if dtype_name(dtype) != "bfloat16":
        return values
    bits = values.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32).reshape(values.shape)


def expect_close(actual, expected, *, name: str, dtype=None, atol=None, rtol=None, mistakes=()) -> str:
    """Pass with "max error …" when `actual` ≈ `expected`, else Fail naming the closest known mistake.

    The tolerance follows the input's `dtype` (and the row length) unless `atol`/`rtol` say otherwise.
    A known mistake is recognised at float32 precision or looser: it is the shape of the error that
    names it, not its last digits. A float64 result with float32 precision is named as such.
    """
    comparison = _Comparison(actual, expected, name, dtype, atol, rtol)
    if comparison.close:
        return f"max error {comparison.worst:.1e}"
    raise Fail(comparison.named(mistakes) or comparison.unnamed())


def known_mistake(actual, expected, *, dtype=None, atol=None, rtol=None, mistakes=(), where="") -> str | None:
    """The hint `expect_close` would give when it names what `actual` got wrong (a catalogued mistake, or a
    lower precision); None when `actual` is right, or wrong in no known way. `where` says which input the
    error was measured on (e.g. ", on random rows with eps=0.1")."""
    comparison = _Comparison(actual, expected, "value", dtype, atol, rtol)
    return None if comparison.close else comparison.named(mistakes, where)


class _Comparison:
    """`actual` against the float64 `expected` at the tolerance of the input's dtype."""

    def __init__(self, actual, expected, name, dtype, atol, rtol):
        self.name, self.dtype = name, dtype
        self.expected = np.asarray(expected, dtype=np.float64)
        self.actual = np.asarray(actual, dtype=np.float64)
        if self.actual.shape != self.expected.shape:
            raise Fail(f"`{name}` has shape {self.actual.shape}, expected {self.expected.shape}.")
        self.size = self.expected.shape[-1] if self.expected.ndim else 1
        default = tolerance(dtype or "float32", self.size)
        self.atol, self.rtol = default if atol is None else atol, default if rtol is None else rtol
        self.error = np.abs(self.actual - self.expected)
        self.worst = float(self.error.max()) if self.error.size else 0.0
        self.close = bool(np.all(self.error <= self.atol + self.rtol * np.abs(self.expected)))

    def named(self, mistakes, where: str = "") -> str | None:
        # A known mistake is named when the output matches it (at float32 precision or looser: the shape of
        # the error names it, not its last digits) and is clearly closer to it than to the oracle.
        matches = []
        for mistake in mistakes:
            with np.errstate(all="ignore"):  # a mistake's output may divide by a zero variance
                wrong = np.asarray(mistake.output(), dtype=np.float64)
            if wrong.shape == self.actual.shape and self._within(wrong, "float32"):
                matches.append((float(np.max(np.abs(self.actual - wrong), initial=0.0)), len(matches), mistake))
        if matches and min(matches)[0] < 0.25 * self.worst:
            return f"{min(matches)[2].hint} (max error {self.worst:.2g} vs the float64 oracle{where})"
        if self.dtype is None or dtype_name(self.dtype) != "float64":
            return None
        for precision, message in (("float32", FLOAT32_IN_FLOAT64), ("float16", FLOAT16_IN_FLOAT64)):
            if self._within(self.expected, precision):
                return (
                    f"{message} (max error {self.worst:.2g} vs the float64 oracle{where}, which float64 reaches "
                    f"to {self.atol:.0e})."
                )
        return None

    def _within(self, reference, precision: str) -> bool:
        """`actual` ≈ `reference` at `precision`'s tolerance (or this comparison's own, if looser)."""
        loose_a = max(self.atol, tolerance(precision, self.size))
        loose_r = max(self.rtol, tolerance(precision, self.size))
        return bool(np.all(np.abs(self.actual - reference) <= loose_a + loose_r * np.abs(reference)))

    def unnamed(self) -> str:
        where = tuple(int(i) for i in np.unravel_index(int(self.error.argmax()), self.error.shape))
        return (
            f"`{self.name}` differs from the float64 oracle: max error {self.worst:.2g} at index {where} "
            f"(got {self.actual[where]:.6g}, expected {self.expected[where]:.6g}; tolerance {self.atol:.0e})."
        )


def judge_large_mean(y, x, gamma, beta, *, limit: float, fix: str, name: str = "y", **expected) -> str:
    """The output on float32 rows around 1e4 with unit spread (`x`): NaN there, or an error over `limit`, is
    E[x²] - E[x]² cancelling. The caller has judged the same rows centred at 0, where any other mistake shows."""
    values = y.values if isinstance(y, TensorRecord) else y
    if isinstance(values, np.ndarray) and values.shape == x.shape and np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):  # before expect_array's own NaN check, which cannot say why
            raise Fail(
                f"`{name}` is NaN on rows around 1e4 (a negative variance): E[x²] - E[x]² cancels catastrophically "
                f"in float32. {fix}"
            )
    values = expect_array(y, name, shape=x.shape, **expected)
    error = float(np.max(np.abs(values.astype(np.float64) - layernorm(x, gamma, beta, 1e-5))))
    if error > limit:
        raise Fail(
            f"Max error {error:.2g} on rows around 1e4: E[x²] - E[x]² cancels catastrophically in float32. {fix}"
        )
    return f"max error {error:.1e}"


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
