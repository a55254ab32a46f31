"""EXPECT: dx matches :: float32 precision

The forward is float64; the backward drops to float32 for its intermediate g.
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    y = (x - mean) * rstd * np.reshape(gamma, (1, -1)) + np.reshape(beta, (1, -1))
    return y, (x, mean, rstd, gamma)


def layernorm_backward(dy, cache):
    x, mean, rstd, gamma = cache
    xhat = (x - mean) * rstd
    g = (dy * np.reshape(gamma, (1, -1))).astype(np.float32)
    dx = rstd * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    dgamma = (dy * xhat).sum(axis=0)
    dbeta = dy.sum(axis=0)
    return dx.astype(x.dtype), dgamma.reshape(np.shape(gamma)), dbeta.reshape(np.shape(gamma))
