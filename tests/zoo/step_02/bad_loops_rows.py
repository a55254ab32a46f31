"""EXPECT: vectorised :: loops over rows"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    y = (x - mean) * rstd * np.reshape(gamma, -1) + np.reshape(beta, -1)
    return y, (x, mean, rstd, gamma)


def layernorm_backward(dy, cache):
    x, mean, rstd, gamma = cache
    dx = np.empty_like(x)
    for i in range(x.shape[0]):
        xhat = (x[i] - mean[i]) * rstd[i]
        g = dy[i] * np.reshape(gamma, -1)
        dx[i] = rstd[i] * (g - g.mean() - xhat * (g * xhat).mean())
    xhat = (x - mean) * rstd
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)
