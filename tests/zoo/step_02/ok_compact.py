"""EXPECT: pass

The compact formula, with D instead of means: dx = rstd / D * (D*g - sum(g) - xhat * sum(g * xhat)).
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    return xhat * gamma.ravel() + beta.ravel(), (xhat, var, eps, gamma)


def layernorm_backward(dy, cache):
    xhat, var, eps, gamma = cache
    d = dy.shape[-1]
    g = dy * gamma.ravel()
    dx = (d * g - g.sum(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True)) / (d * np.sqrt(var + eps))
    return dx, (dy * xhat).sum(0), dy.sum(0)
