"""EXPECT: dgamma matches :: dgamma is multiplied by gamma

dgamma sums dy * xhat * gamma."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * rstd
    y = xhat * gamma + beta
    return y, (x, xhat, rstd, gamma, eps)


def layernorm_backward(dy, cache):
    x, xhat, rstd, gamma, eps = cache
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat * gamma).sum(axis=0)
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx, dgamma.reshape(np.shape(gamma)), dbeta.reshape(np.shape(gamma))
