"""Step 01 — LayerNorm forward in NumPy.

    y = gamma * (x - mean) / sqrt(var + eps) + beta      (per row, over the D features)

with the *biased* variance (divide by D) and eps *inside* the square root.

Check your work:  make s01   (or: pixi run s01)
Read:             docs/src/step_01.md
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Normalise each row of `x` over its features, then scale by `gamma` and shift by `beta`.

    Args:
        x: (N, D) array.
        gamma: (D,) or (1, D) scale.
        beta: (D,) or (1, D) shift.
        eps: added to the variance, inside the square root, so a constant row stays finite.

    Returns:
        y: (N, D) array with the dtype of `x`.
        cache: what the backward pass needs (step 02).
    """
    # TODO-BLOCK: forward
    # TODO 1: the mean of each row, shape (N, 1).
    # Hint: x.mean(axis=..., keepdims=True) — keepdims keeps it broadcastable against (N, D).
    mean = None

    # TODO 2: the biased variance of each row, shape (N, 1): the mean of the squared centred values.
    # Hint: subtract the mean first, then square; E[x²] - E[x]² loses all precision when the mean is large.
    var = None

    # TODO 3: rstd = 1 / sqrt(var + eps), shape (N, 1): eps inside the square root.
    rstd = None

    # TODO 4: xhat = (x - mean) * rstd, then scale and shift: y = xhat * gamma + beta, shape (N, D).
    # gamma and beta may be (D,) or (1, D): np.reshape(gamma, (1, -1)) fits both.
    y = None
    # TODO-BLOCK-END: forward
    cache = (x, mean, rstd, gamma)  # small: xhat is recomputed in backward
    return y.astype(x.dtype, copy=False), cache
