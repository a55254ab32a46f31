"""The one catalogue of classic wrong LayerNorms: what each outputs, and the hint that names it.

A step picks the keys (`MistakeKey`) its learners can make and adds, per key, how to fix it in that
step's language (`fixes`; `NO_FIX` where the hint says it all); `expect_close` then names the first
catalogued mistake the output matches.
"""

from __future__ import annotations

import copy
import enum
import itertools

import numpy as np

from tests.check.kit.judging import PRECISION, Mistake, layernorm, layernorm_grads


class MistakeKey(enum.Enum):
    """A catalogued mistake, by name: a step's fixes are keyed by these, so a misspelt key fails at import. Some
    name a wrong forward and a wrong backward alike (UNBIASED, NO_EPS...): each catalogue has its own hint."""

    EPS_IGNORED = "eps-ignored"
    NO_EPS = "no-eps"
    NO_KEEPDIMS = "no-keepdims"
    LAST_DIM_ONLY = "last-dim-only"
    UNBIASED = "unbiased"
    UNBIASED_EPS_OUTSIDE = "unbiased-eps-outside"
    EPS_OUTSIDE = "eps-outside"
    BATCH_AXIS = "batch-axis"
    WHOLE = "whole"
    NO_AFFINE = "no-affine"
    NO_GAMMA = "no-gamma"
    NO_BETA = "no-beta"
    BETA_FIRST = "beta-first"
    SWAPPED = "swapped"
    BY_VARIANCE = "by-variance"
    NOT_CENTRED = "not-centred"
    RMS = "rms"
    VAR_UNCENTRED = "var-uncentred"
    SUM_NOT_MEAN = "sum-not-mean"
    ROWS_COUNT = "rows-count"
    VAR_BATCH_AXIS = "var-batch-axis"
    BY_MEAN_DEVIATION = "by-mean-deviation"
    DIVIDES_BY_GAMMA = "divides-by-gamma"
    PARAMS_PER_ROW = "params-per-row"
    TIMES_STD = "times-std"
    ROWS_SHIFTED_DOWN = "rows-shifted-down"
    ROWS_SHIFTED_UP = "rows-shifted-up"
    ROW_ZERO = "row-zero"
    UNCENTRED_VARIANCE = "uncentred-variance"
    AFFINE_FIRST = "affine-first"
    EPS_AFTER_DIVISION = "eps-after-division"
    AFFINE_TWICE = "affine-twice"
    NO_MEAN_PATH = "no-mean-path"
    NO_VARIANCE_PATH = "no-variance-path"
    CONSTANT_STATISTICS = "constant-statistics"
    IGNORES_GAMMA = "ignores-gamma"
    SIGN = "sign"
    SIGN_MEAN_PATH = "sign-mean-path"
    SIGN_VARIANCE_PATH = "sign-variance-path"
    MEAN_PATH_SUM = "mean-path-sum"
    VARIANCE_PATH_SUM = "variance-path-sum"
    NO_RSTD = "no-rstd"
    RSTD_TWICE = "rstd-twice"
    VARIANCE_PATH_CENTRED = "variance-path-centred"
    CORRECTIONS_IGNORE_GAMMA = "corrections-ignore-gamma"
    DIRECT_IGNORES_GAMMA = "direct-ignores-gamma"
    GAMMA_TWICE = "gamma-twice"


class NoFix(enum.Enum):
    """The type of NO_FIX: one value, told from any text by its type (an empty text was once "no fix")."""

    NO_FIX = "no fix"


NO_FIX = NoFix.NO_FIX  # a fixes value: the step adds nothing to the catalogue's hint, which says it all
Fixes = dict[MistakeKey, str | NoFix]


def with_fix(hint: str, fix: str | NoFix) -> str:
    """The catalogue's hint, followed by the step's fix for it (if it has one)."""
    return hint if fix is NO_FIX else f"{hint}: {fix}"


# Besides the framework's default, the eps constants learners copy from other code (T5, Adam, ...):
# an eps ignored in favour of one of them is named with the constant it used.
COMMON_EPS = (1e-6, 1e-8, 1e-3)

FORWARD_MISTAKES = {
    MistakeKey.EPS_IGNORED: (
        "The eps argument is ignored: the result is the one for eps={s.default_text}",
        lambda s: layernorm(s.x, s.w, s.b, s.default_eps, s.axes),
    ),
    MistakeKey.NO_EPS: ("eps is not added", lambda s: layernorm(s.x, s.w, s.b, 0.0, s.axes)),
    MistakeKey.NO_KEEPDIMS: (
        "The statistics lost their row axis: without keepdims=True a (N,) mean is subtracted along columns",
        (  # the variance of the rows (np.var), or of the wrongly centred x
            lambda s: (s.x - s.mean.T) / np.sqrt(s.var.T + s.eps) * s.w + s.b,
            lambda s: (s.x - s.mean.T) / np.sqrt(((s.x - s.mean.T) ** 2).mean(axis=-1) + s.eps) * s.w + s.b,
        ),
    ),
    MistakeKey.LAST_DIM_ONLY: (
        "Only the last dim is normalised: for normalized_shape={s.w.shape} the mean and variance "
        "run over the last {s.n_axes} dims",
        lambda s: layernorm(s.x, s.w, s.b, s.eps, (-1,)),
    ),
    MistakeKey.UNBIASED: (
        "The variance looks unbiased (divided by D-1); LayerNorm uses the biased variance (divide by D)",
        lambda s: (s.x - s.mean) / np.sqrt(s.unbiased + s.eps) * s.w + s.b,
    ),
    MistakeKey.UNBIASED_EPS_OUTSIDE: (
        "eps is outside the square root and the std is the unbiased one (divided by D-1, as torch's x.std() "
        "does by default)",
        lambda s: (s.x - s.mean) / (np.sqrt(s.unbiased) + s.eps) * s.w + s.b,
    ),
    MistakeKey.EPS_OUTSIDE: (
        "eps is outside the square root",
        (  # added to the std, or to its reciprocal
            lambda s: (s.x - s.mean) / (np.sqrt(s.var) + s.eps) * s.w + s.b,
            lambda s: (s.x - s.mean) * (1 / np.sqrt(s.var) + s.eps) * s.w + s.b,
        ),
    ),
    MistakeKey.BATCH_AXIS: (
        "Normalised over the wrong axis: the statistics must be per row, not per column (the batch, as in BatchNorm)",
        lambda s: layernorm(s.x, s.w, s.b, s.eps, (0,)),
    ),
    MistakeKey.WHOLE: (
        "Normalised over the whole array: take the mean and variance per row",
        lambda s: layernorm(s.x, s.w, s.b, s.eps, tuple(range(s.x.ndim))),
    ),
    MistakeKey.NO_AFFINE: ("gamma and beta are not applied", lambda s: s.xhat),
    MistakeKey.NO_GAMMA: ("gamma is not applied", lambda s: s.xhat + s.b),
    MistakeKey.NO_BETA: ("beta is not applied", lambda s: s.xhat * s.w),
    MistakeKey.BETA_FIRST: ("beta is added before scaling by gamma", lambda s: (s.xhat + s.b) * s.w),
    MistakeKey.SWAPPED: ("gamma and beta are swapped: gamma scales, beta shifts", lambda s: s.xhat * s.b + s.w),
    MistakeKey.BY_VARIANCE: (
        "Divided by the variance instead of the standard deviation",
        lambda s: (s.x - s.mean) / (s.var + s.eps) * s.w + s.b,
    ),
    MistakeKey.NOT_CENTRED: ("The mean is not subtracted", lambda s: s.x / np.sqrt(s.var + s.eps) * s.w + s.b),
    MistakeKey.RMS: (
        "This is RMSNorm: the mean is neither subtracted nor used in the variance (the mean of x², not of (x - mean)²)",
        lambda s: s.x / np.sqrt((s.x**2).mean(axis=s.axes, keepdims=True) + s.eps) * s.w + s.b,
    ),
    MistakeKey.VAR_UNCENTRED: (
        "The variance is the mean of x², not of (x - mean)²: square the centred values",
        lambda s: (s.x - s.mean) / np.sqrt((s.x**2).mean(axis=s.axes, keepdims=True) + s.eps) * s.w + s.b,
    ),
    MistakeKey.SUM_NOT_MEAN: (
        "The variance is summed, not averaged (or the row is divided by its norm, the square root of the sum of "
        "squares): it is the mean of (x - mean)²",
        (
            lambda s: (s.x - s.mean) / np.sqrt(s.var * s.count + s.eps) * s.w + s.b,
            lambda s: (s.x - s.mean) / (np.sqrt(s.var * s.count) + s.eps) * s.w + s.b,
        ),
    ),
    MistakeKey.ROWS_COUNT: (
        "The statistics divide by the number of rows N, not by the number of features D they average over",
        (  # the variance alone, or the mean and the variance
            lambda s: (s.x - s.mean) / np.sqrt(s.var * s.count / s.n_rows + s.eps) * s.w + s.b,
            lambda s: _normalised_by_rows(s) * s.w + s.b,
        ),
    ),
    MistakeKey.VAR_BATCH_AXIS: (
        "The mean is per row but the variance is taken over the wrong axis (per column, or the whole array): take "
        "both along the row",
        (
            lambda s: (s.x - s.mean) / np.sqrt(s.x.var(axis=s.batch_axes, keepdims=True) + s.eps) * s.w + s.b,
            lambda s: (s.x - s.mean) / np.sqrt(s.x.var() + s.eps) * s.w + s.b,
        ),
    ),
    MistakeKey.BY_MEAN_DEVIATION: (
        "Divided by the mean absolute deviation mean(|x - mean|), not the standard deviation sqrt(var + eps)",
        lambda s: (s.x - s.mean) / (np.abs(s.x - s.mean).mean(axis=s.axes, keepdims=True) + s.eps) * s.w + s.b,
    ),
    MistakeKey.DIVIDES_BY_GAMMA: ("xhat is divided by gamma; gamma multiplies it", lambda s: s.xhat / s.w + s.b),
    MistakeKey.PARAMS_PER_ROW: (
        "gamma and beta are applied per row (shaped (D, 1), or transposed): each belongs to a feature, a column",
        lambda s: s.xhat * s.w.reshape(-1, 1) + s.b.reshape(-1, 1),
    ),
    MistakeKey.TIMES_STD: (
        "Multiplied by the standard deviation instead of dividing",
        lambda s: (s.x - s.mean) * np.sqrt(s.var + s.eps) * s.w + s.b,
    ),
    MistakeKey.ROWS_SHIFTED_DOWN: ("Each row's result lands in the wrong row", lambda s: np.roll(s.good, 1, axis=0)),
    MistakeKey.ROWS_SHIFTED_UP: ("Each row's result lands in the wrong row", lambda s: np.roll(s.good, -1, axis=0)),
    MistakeKey.ROW_ZERO: ("Every row got row 0's result", lambda s: np.repeat(s.good[:1], len(s.good), axis=0)),
}

BACKWARD_WITHOUT_EPS = (
    "The backward leaves eps out: rstd = 1 / sqrt(var + eps) there as in the forward (cache rstd in the forward "
    "and reuse it)"
)
BACKWARD_EPS_IGNORED = (
    "The backward uses eps={eps} whatever the forward was given: cache rstd (or eps) in the forward and "
    "use it in the backward"
)

GRADIENT_MISTAKES = {  # outputs are dx
    MistakeKey.NO_MEAN_PATH: (
        "dx misses the path through the mean",
        lambda s: s.rstd * (s.g - s.xhat * (s.g * s.xhat).mean(axis=s.axes, keepdims=True)),
    ),
    MistakeKey.NO_VARIANCE_PATH: (
        "dx misses the path through the variance",
        lambda s: s.rstd * (s.g - s.g.mean(axis=s.axes, keepdims=True)),
    ),
    MistakeKey.CONSTANT_STATISTICS: (
        "dx treats the mean and variance as constants: both correction terms are missing",
        lambda s: s.rstd * s.g,
    ),
    MistakeKey.IGNORES_GAMMA: (
        "dx ignores gamma: the gradient reaching xhat is dy * gamma, not dy",
        lambda s: layernorm_grads(s.x, np.ones_like(s.w), s.eps, s.dy, s.axes)[0],
    ),
    MistakeKey.SIGN: ("dx has the wrong sign", lambda s: -layernorm_grads(s.x, s.w, s.eps, s.dy, s.axes)[0]),
    MistakeKey.BATCH_AXIS: (
        "dx reduces over the wrong axis: its means are per row",
        lambda s: (
            s.rstd * (s.g - s.g.mean(axis=0, keepdims=True) - s.xhat * (s.g * s.xhat).mean(axis=0, keepdims=True))
        ),
    ),
    MistakeKey.UNBIASED: (
        "dx uses the unbiased variance (D-1): the forward's statistics are biased",
        lambda s: (
            s.urstd
            * (
                s.g
                - s.g.mean(axis=s.axes, keepdims=True)
                - s.uxhat * (s.g * s.uxhat).mean(axis=s.axes, keepdims=True) * s.count / (s.count - 1)
            )
        ),
    ),
    # Hand-written backwards, each term named by its closed form: dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    MistakeKey.SIGN_MEAN_PATH: (
        "dx adds the path through the mean instead of subtracting it: the term is -rstd * mean(g)",
        lambda s: _dx(s, mean_path=-1),
    ),
    MistakeKey.SIGN_VARIANCE_PATH: (
        "dx adds the path through the variance instead of subtracting it: the term is -rstd * xhat * mean(g * xhat)",
        lambda s: _dx(s, variance_path=-1),
    ),
    MistakeKey.MEAN_PATH_SUM: (
        "The path through the mean subtracts sum(g), not mean(g): the term is -rstd * mean(g), a sum divided by D",
        lambda s: _dx(s, mean_path=s.count),
    ),
    MistakeKey.VARIANCE_PATH_SUM: (
        "The path through the variance uses sum(g * xhat), not mean(g * xhat): the term is "
        "-rstd * xhat * mean(g * xhat), a sum divided by D",
        lambda s: _dx(s, variance_path=s.count),
    ),
    MistakeKey.ROWS_COUNT: (
        "dx divides by the number of rows N, not by D: mean(g) and mean(g * xhat) average over a row's D features",
        lambda s: _dx(s, mean_path=s.count / s.n_rows, variance_path=s.count / s.n_rows),
    ),
    MistakeKey.NO_RSTD: (
        "dx misses the factor rstd = 1 / sqrt(var + eps): dx = rstd * (g - mean(g) - xhat * mean(g * xhat))",
        lambda s: _dx(s) / s.rstd,
    ),
    MistakeKey.TIMES_STD: (
        "dx is multiplied by the standard deviation sqrt(var + eps); the factor is rstd = 1 / sqrt(var + eps)",
        lambda s: _dx(s) / s.rstd**2,
    ),
    MistakeKey.RSTD_TWICE: (
        "dx has the factor rstd twice (rstd² ...); it is rstd * (g - mean(g) - xhat * mean(g * xhat)), once",
        lambda s: _dx(s) * s.rstd,
    ),
    MistakeKey.VARIANCE_PATH_CENTRED: (
        "The path through the variance uses x - mean where xhat belongs: the term is -rstd * xhat * mean(g * xhat), "
        "with xhat = (x - mean) * rstd",
        lambda s: s.rstd * (s.g - _mean(s, s.g) - (s.x - s.mean) * _mean(s, s.g * (s.x - s.mean))),
    ),
    MistakeKey.CORRECTIONS_IGNORE_GAMMA: (
        "The two correction terms use dy where g = dy * gamma belongs: "
        "dx = rstd * (g - mean(g) - xhat * mean(g * xhat))",
        lambda s: s.rstd * (s.g - _mean(s, s.dy) - s.xhat * _mean(s, s.dy * s.xhat)),
    ),
    MistakeKey.DIRECT_IGNORES_GAMMA: (
        "The direct term uses dy where g = dy * gamma belongs: dx = rstd * (g - mean(g) - xhat * mean(g * xhat))",
        lambda s: s.rstd * (s.dy - _mean(s, s.g) - s.xhat * _mean(s, s.g * s.xhat)),
    ),
    MistakeKey.GAMMA_TWICE: (
        "dx multiplies by gamma twice: g = dy * gamma already carries it",
        lambda s: _dx(s) * s.w,
    ),
    MistakeKey.NO_EPS: (
        BACKWARD_WITHOUT_EPS,
        (  # everything recomputed without eps, or only rstd
            lambda s: layernorm_grads(s.x, s.w, 0.0, s.dy, s.axes)[0],
            lambda s: _dx(s) * np.sqrt((s.var + s.eps) / s.var),
        ),
    ),
    MistakeKey.EPS_IGNORED: (
        BACKWARD_EPS_IGNORED.format(eps="{s.default_text}"),
        (
            lambda s: layernorm_grads(s.x, s.w, s.default_eps, s.dy, s.axes)[0],
            lambda s: _dx(s) * np.sqrt((s.var + s.eps) / (s.var + s.default_eps)),
        ),
    ),
}


def _mean(s, values):
    return values.mean(axis=s.axes, keepdims=True)


def _dx(s, mean_path=1.0, variance_path=1.0):
    """dx with its two correction terms scaled (1: right, -1: added, D: a sum where a mean belongs)."""
    return s.rstd * (s.g - mean_path * _mean(s, s.g) - variance_path * s.xhat * _mean(s, s.g * s.xhat))


def _normalised_by_rows(s):
    """xhat with the mean and the variance both divided by the number of rows instead of the features."""
    mean = s.mean * s.count / s.n_rows
    return (s.x - mean) / np.sqrt(((s.x - mean) ** 2).mean(axis=s.axes, keepdims=True) * s.count / s.n_rows + s.eps)


def _eps_text(eps: float) -> str:
    return f"{eps:g}".replace("e-0", "e-")


class _Statistics:
    """The row statistics every catalogued mistake is built from (float64)."""

    def __init__(self, x, gamma, beta, eps, axes, default_eps=1e-5, dy=None):
        self.precision = PRECISION.get(np.asarray(x).dtype.name, PRECISION["float32"])
        self.x, self.eps, self.axes, self.default_eps = np.asarray(x, np.float64), eps, tuple(axes), default_eps
        self.w, self.b = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
        self.n_axes, self.count = len(self.axes), int(np.prod([self.x.shape[a] for a in self.axes]))
        self.n_rows = self.x.size // max(self.count, 1)
        self.batch_axes = tuple(a for a in range(self.x.ndim) if a not in {a % self.x.ndim for a in self.axes})
        self.mean = self.x.mean(axis=self.axes, keepdims=True)
        self.var = ((self.x - self.mean) ** 2).mean(axis=self.axes, keepdims=True)
        self.default_text = _eps_text(default_eps)
        self.unbiased = self.var * self.count / max(self.count - 1, 1)
        self.rstd, self.urstd = 1 / np.sqrt(self.var + eps), 1 / np.sqrt(self.unbiased + eps)
        self.xhat, self.uxhat = (self.x - self.mean) * self.rstd, (self.x - self.mean) * self.urstd
        self.good = self.xhat * self.w + self.b
        self.dy = None if dy is None else np.asarray(dy, np.float64)
        self.g = None if dy is None else self.dy * self.w

    def variants(self, key: MistakeKey) -> list[_Statistics]:
        """The statistics each variant of a mistake is built from: one per eps constant for EPS_IGNORED."""
        if key is not MistakeKey.EPS_IGNORED:
            return [self]
        # a constant is worth naming where its result stands out from no eps at all at the input's precision
        # (eps over twice the variance is the relative change it makes); below that, "eps is not added" says it
        smallest = float(np.min(self.var, initial=np.inf))
        seen = [c for c in COMMON_EPS if c != self.default_eps and c > 20 * self.precision * smallest]
        return [self.with_default_eps(c) for c in (self.default_eps, *seen) if c != self.eps]

    def with_default_eps(self, constant: float) -> _Statistics:
        variant = copy.copy(self)
        variant.default_eps, variant.default_text = constant, _eps_text(constant)
        return variant

    def applies(self, key: MistakeKey) -> bool:
        return {
            MistakeKey.NO_EPS: self.eps != 0,
            MistakeKey.NO_KEEPDIMS: self.x.ndim == 2 and self.x.shape[0] == self.x.shape[1],
            MistakeKey.LAST_DIM_ONLY: self.n_axes > 1,
            MistakeKey.UNBIASED: self.count > 1,
            MistakeKey.UNBIASED_EPS_OUTSIDE: self.count > 1,
            MistakeKey.ROWS_COUNT: self.n_rows != self.count,
            MistakeKey.VAR_BATCH_AXIS: len(self.batch_axes) > 0 and self.n_rows > 1,
            MistakeKey.PARAMS_PER_ROW: self.x.ndim == 2 and self.x.shape[0] == self.x.shape[1] == self.w.size,
            MistakeKey.ROWS_SHIFTED_DOWN: len(self.x) > 1,
            MistakeKey.ROWS_SHIFTED_UP: len(self.x) > 1,
            MistakeKey.ROW_ZERO: len(self.x) > 1,
        }.get(key, True)


def _catalogued(catalogue, stats: _Statistics, fixes: Fixes, names=("gamma", "beta")) -> list[Mistake]:
    stray = [key for key in fixes if key not in catalogue]
    wrong = [key for key, fix in fixes.items() if fix is not NO_FIX and not (isinstance(fix, str) and fix)]
    if stray or wrong:  # a checklist's mistake, not the learner's
        raise ValueError(f"fixes with keys this catalogue lacks {stray}, or a fix neither a text nor NO_FIX {wrong}")
    mistakes = []
    for key, (hint, output) in catalogue.items():
        if key not in fixes or not stats.applies(key):
            continue
        ways = output if isinstance(output, tuple) else (output,)  # some mistakes can be written several ways
        for variant in stats.variants(key):
            text = with_fix(hint.format(s=variant).replace("gamma", names[0]).replace("beta", names[1]), fixes[key])
            mistakes.extend(Mistake(text, lambda way=way, variant=variant: way(variant)) for way in ways)
    return mistakes


def forward_mistakes(
    x, gamma, beta, eps, fixes: Fixes, *, axes=(-1,), default_eps=1e-5, names=("gamma", "beta")
) -> list[Mistake]:
    """The outputs of the catalogued wrong forwards named in `fixes`, each hint ending in its fix.

    `names` are what the step calls gamma and beta (PyTorch: weight and bias).
    """
    return _catalogued(FORWARD_MISTAKES, _Statistics(x, gamma, beta, eps, axes, default_eps), fixes, names)


def gradient_mistakes(x, gamma, eps, dy, fixes: Fixes, *, axes=(-1,)) -> list[Mistake]:
    """dx of the catalogued wrong backwards named in `fixes` (hand-written, or autograd cut short)."""
    return _catalogued(GRADIENT_MISTAKES, _Statistics(x, gamma, 0.0, eps, axes, dy=dy), fixes)


def parameter_gradient_mistakes(x, gamma, eps, dy) -> dict[str, list[Mistake]]:
    """dgamma and dbeta of the classic wrong backwards, each with the hint that names it (NumPy's terms).

    The forward is known right where these are judged: an eps that changes xhat is the backward's own.
    """
    flat_gamma, dy = np.reshape(gamma, -1), np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    _, dgamma, dbeta = layernorm_grads(x, flat_gamma, eps, dy)
    swapped = "dgamma and dbeta look swapped: dbeta = sum(dy), dgamma = sum(dy * xhat)"
    eps_ignored = [
        Mistake(
            BACKWARD_EPS_IGNORED.format(eps=_eps_text(constant)),
            lambda constant=constant: layernorm_grads(x, flat_gamma, constant, dy)[1],
        )
        for constant in (1e-5, *COMMON_EPS)
        if constant != eps
    ]
    without_eps = [Mistake(BACKWARD_WITHOUT_EPS, lambda: layernorm_grads(x, flat_gamma, 0.0, dy)[1])] if eps else []
    centred = x - x.mean(axis=-1, keepdims=True)
    return {
        "dgamma": [
            *eps_ignored,
            *without_eps,
            Mistake(swapped, lambda: dbeta),
            Mistake("dgamma has the wrong sign", lambda: -dgamma),
            Mistake("dgamma sums dy * x; it must be dy * xhat (the normalised input)", lambda: (dy * x).sum(axis=0)),
            Mistake(
                "dgamma sums dy * (x - mean); it must be dy * xhat, the normalised input (x - mean) * rstd",
                lambda: (dy * centred).sum(axis=0),
            ),
            Mistake(
                "dgamma is a mean over the batch; it is the sum of dy * xhat over the batch (axis 0)",
                lambda: dgamma / len(x),
            ),
            Mistake(
                "dgamma is multiplied by gamma: it is sum(dy * xhat) over the batch, without gamma",
                lambda: dgamma * flat_gamma,
            ),
        ],
        "dbeta": [
            Mistake(swapped, lambda: dgamma),
            Mistake("dbeta has the wrong sign", lambda: -dbeta),
            Mistake("dbeta is a mean; it is the sum of dy over the batch", lambda: dy.mean(axis=0)),
            Mistake(
                "dbeta is multiplied by gamma: it is sum(dy) over the batch, without gamma", lambda: dbeta * flat_gamma
            ),
        ],
    }


def _normalised(x, centre_axes, variance_axes, variance_centre_axes, eps):
    """(x - mean over centre_axes) / sqrt(var + eps), the variance over variance_axes around the mean over
    variance_centre_axes: a LayerNorm whose statistics run over the wrong dims, or over different ones."""
    mean = x.mean(axis=centre_axes, keepdims=True)
    around = x.mean(axis=variance_centre_axes, keepdims=True)
    var = ((x - around) ** 2).mean(axis=variance_axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


PLURAL = {"dim": "dims", "axis": "axes"}


def _dims_text(axes, ndim, word="dim") -> str:
    dims = tuple(sorted(a - ndim if a >= 0 else a for a in axes))
    return f"{word} {dims[0]}" if len(dims) == 1 else f"{PLURAL[word]} {dims}"


def axes_mistakes(x, gamma, beta, eps, axes, fix: str, *, wanted: str | None = None, word="dim") -> list[Mistake]:
    """Outputs of LayerNorms whose statistics run over the wrong dims, each with the hint that names them: any other set
    of dims (the last only, one more, the batch...), the mean and the variance over different dims, and a tuple of dims
    normalised one dim at a time. `fix` says how to reduce over the right ones, `wanted` which they are (by default in
    normalized_shape's terms), `word` what the step calls a dim ("axis")."""
    x, w, b = np.asarray(x, np.float64), np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
    ndim, right = x.ndim, tuple(sorted(a % x.ndim for a in axes))
    shape = tuple(x.shape[a] for a in right)
    if wanted is None:
        wanted = (
            f"for normalized_shape={shape} both run over the last {f'{len(right)} dims' if len(right) > 1 else 'dim'}"
        )
    wanted = f"{wanted}, {_dims_text(right, ndim, word)}: {fix}"
    subsets = [other for size in range(1, ndim + 1) for other in itertools.combinations(range(ndim), size)]
    mistakes = [
        Mistake(
            f"The mean and variance are taken over {_dims_text(other, ndim, word)} of a {ndim}-D input; {wanted}",
            lambda other=other: _normalised(x, other, other, other, eps) * w + b,
        )
        for other in subsets
        if other != right
    ]
    # the mean and the variance over different dims (the variance around either mean)
    for centre, variance in itertools.product(subsets, repeat=2):
        for around in {centre, variance}:
            if centre != variance and right in (centre, variance):
                mistakes.append(
                    Mistake(
                        f"The mean and the variance are taken over different {PLURAL[word]} (the mean over "
                        f"{_dims_text(centre, ndim, word)}, the variance over {_dims_text(variance, ndim, word)}); "
                        f"{wanted}",
                        lambda c=centre, v=variance, a=around: _normalised(x, c, v, a, eps) * w + b,
                    )
                )
    if len(right) > 1:
        for order in (right, right[::-1]):
            mistakes.append(
                Mistake(
                    f"The dims of normalized_shape are normalised one dim at a time, each in turn: LayerNorm takes one "
                    f"mean and one variance over all {len(right)} dims together: {fix}",
                    lambda order=order: _one_dim_at_a_time(x, order, eps) * w + b,
                )
            )
    return mistakes


def _one_dim_at_a_time(x, order, eps):
    for axis in order:
        x = _normalised(x, (axis,), (axis,), (axis,), eps)
    return x


FORWARD_MISTAKES[MistakeKey.UNCENTRED_VARIANCE] = (
    "The variance is the mean of x² (the raw second moment), without subtracting the mean: average the centred "
    "square, (x - mean)²",
    lambda s: (s.x - s.mean) / np.sqrt((s.x**2).mean(axis=s.axes, keepdims=True) + s.eps) * s.w + s.b,
)
FORWARD_MISTAKES[MistakeKey.AFFINE_FIRST] = (
    "gamma and beta are applied before normalising (x * gamma + beta is what gets normalised): normalise first, then "
    "scale and shift",
    lambda s: layernorm(s.x * s.w + s.b, 1.0, 0.0, s.eps, s.axes),
)
FORWARD_MISTAKES[MistakeKey.EPS_AFTER_DIVISION] = (
    "eps is added after the division, (x - mean) / sqrt(var) + eps (a missing pair of parentheses): it goes inside "
    "the square root",
    lambda s: ((s.x - s.mean) / np.sqrt(s.var) + s.eps) * s.w + s.b,
)
FORWARD_MISTAKES[MistakeKey.AFFINE_TWICE] = (
    "gamma and beta are applied twice (y * gamma + beta once more after a normalisation that applied them)",
    lambda s: s.good * s.w + s.b,
)
