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
    y = x - mean                                                 # (N, D), centred
    rstd = 1.0 / np.sqrt(np.vecdot(y, y)[:, None] / x.shape[1] + eps)  # (N, 1)
    y *= rstd
    y *= np.reshape(gamma, (1, -1))
    y += np.reshape(beta, (1, -1))
    return y.astype(x.dtype, copy=False), (x, mean, rstd, gamma)
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
    xhat = x - mean                                              # (N, D), recomputed...
    xhat *= rstd                                                 # ...in place
    dbeta = dy.sum(axis=0)                                       # (D,) summed over the batch
    dgamma = np.einsum("nd,nd->d", dy, xhat)                     # (D,) without a (N, D) temporary
    dx = dy * np.reshape(gamma, (1, -1))                         # g = dL/dxhat, becomes dx in place
    g_xhat = np.vecdot(dx, xhat)[:, None] / x.shape[1]           # (N, 1) mean(g * xhat)
    dx -= dx.mean(axis=1, keepdims=True)                         # path through the mean
    xhat *= g_xhat                                               # xhat is not needed any more
    dx -= xhat                                                   # path through the variance
    dx *= rstd
    # ANCHOR_END: backward
    return dx, dgamma.reshape(np.shape(gamma)), dbeta.reshape(np.shape(gamma))
