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
    # TODO-BLOCK: forward
    # TODO 1: paste your step 01 forward here, and cache what your backward will need.
    # Small caches are a virtue: (x, mean, rstd, gamma) is enough; xhat can be recomputed.
    raise NotImplementedError("TODO 1: the forward, with a cache for the backward")
    # TODO-BLOCK-END: forward


def layernorm_backward(dy, cache):
    """Gradients of the loss with respect to x, gamma and beta, given dL/dy.

    Args:
        dy: (N, D) upstream gradient.
        cache: what `layernorm_forward` returned.

    Returns:
        dx: (N, D); dgamma and dbeta shaped like gamma.
    """
    # TODO-BLOCK: backward
    x, mean, rstd, gamma = cache  # what the forward above caches; change both together
    # TODO 2: dbeta — beta is added to every row, so its gradient sums dy over the batch (axis 0).
    dbeta = None

    # TODO 3: dgamma — gamma multiplies xhat, so its gradient sums dy * xhat over the batch.
    dgamma = None

    # TODO 4: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, means along each row.
    # Hint: forgetting either subtracted term is the classic mistake; the checker names which one.
    dx = None
    # TODO-BLOCK-END: backward
    return dx, dgamma.reshape(np.shape(gamma)), dbeta.reshape(np.shape(gamma))
