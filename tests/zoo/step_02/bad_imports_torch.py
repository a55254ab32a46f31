"""EXPECT: NumPy only :: imports torch"""

import numpy as np
import torch  # noqa: F401  (unused: the rule is about what the file imports)


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    y = (x - mean) * rstd * np.reshape(gamma, -1) + np.reshape(beta, -1)
    return y, (x, mean, rstd, gamma)


def layernorm_backward(dy, cache):
    x, mean, rstd, gamma = cache
    xhat = (x - mean) * rstd
    g = dy * np.reshape(gamma, -1)
    dx = rstd * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)
