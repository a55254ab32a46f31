"""EXPECT: worked example 3 :: one value per row

dgamma and dbeta summed over axis 1; the step file's return line then cannot reshape them to gamma's shape."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(-1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    return xhat * np.reshape(gamma, -1) + np.reshape(beta, -1), (xhat, rstd, gamma)


def layernorm_backward(dy, cache):
    xhat, rstd, gamma = cache
    g = dy * np.reshape(gamma, -1)
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    dgamma, dbeta = (dy * xhat).sum(axis=1), dy.sum(axis=1)
    return dx, dgamma.reshape(np.shape(gamma)), dbeta.reshape(np.shape(gamma))
