"""Step 02 — LayerNorm backward in NumPy.

With xhat = (x - mean) * rstd and g = dy * gamma, the gradient of a row is

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat))

The two subtracted terms are the paths through the mean and through the variance.

Check your work:  make s02   (or: pixi run s02)
Read:             docs/src/step_02.md (the derivation)
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Step 01's forward, caching only what backward needs: x, mean, rstd and gamma.

    Args:
        x: (N, D) array.
        gamma: (D,) or (1, D) scale.
        beta: (D,) or (1, D) shift.
        eps: added to the variance, inside the square root.

    Returns:
        y: (N, D) array with the dtype of `x`; cache: (x, mean, rstd, gamma).
    """
    # ANCHOR: forward
    mean = x.mean(axis=1, keepdims=True)                         # (N, 1)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)          # (N, 1), biased: divides by D
    rstd = 1.0 / np.sqrt(var + eps)                              # (N, 1), eps inside the sqrt
    y = (x - mean) * rstd * np.reshape(gamma, (1, -1)) + np.reshape(beta, (1, -1))  # (N, D)
    return y.astype(x.dtype, copy=False), (x, mean, rstd, gamma)  # small: xhat is recomputed
    # ANCHOR_END: forward


def layernorm_backward(dy, cache):
    """Gradients of the loss with respect to x, gamma and beta, given dL/dy.

    Args:
        dy: (N, D) upstream gradient.
        cache: what `layernorm_forward` returned.

    Returns:
        dx: (N, D); dgamma and dbeta shaped like gamma.
    """
    # ANCHOR: backward
    x, mean, rstd, gamma = cache
    xhat = (x - mean) * rstd                                     # (N, D), recomputed, not cached
    dbeta = dy.sum(axis=0)                                       # (D,): beta is added to every row
    dgamma = (dy * xhat).sum(axis=0)                             # (D,): gamma scales xhat
    g = dy * np.reshape(gamma, (1, -1))                          # (N, D), dL/dxhat
    # the direct path, minus the paths through the mean and through the variance; means along each row
    dx = rstd * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    # ANCHOR_END: backward
    return dx, dgamma.reshape(np.shape(gamma)), dbeta.reshape(np.shape(gamma))
