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
    # ANCHOR: forward
    mean = x.mean(axis=1, keepdims=True)                         # (N, 1)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)          # (N, 1), biased: divides by D
    rstd = 1.0 / np.sqrt(var + eps)                              # (N, 1), eps inside the sqrt
    y = (x - mean) * rstd * np.reshape(gamma, (1, -1)) + np.reshape(beta, (1, -1))  # (N, D)
    # ANCHOR_END: forward
    cache = (x, mean, rstd, gamma)  # small: xhat is recomputed in backward
    return y.astype(x.dtype, copy=False), cache
