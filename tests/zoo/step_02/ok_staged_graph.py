"""EXPECT: pass

The staged, computational-graph style of CS231n: every intermediate gets its own gradient.
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    d = x.shape[1]
    mu = np.sum(x, axis=1, keepdims=True) / d
    xmu = x - mu
    sq = xmu ** 2
    var = np.sum(sq, axis=1, keepdims=True) / d
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    y = np.reshape(gamma, (1, -1)) * xhat + np.reshape(beta, (1, -1))
    return y, (xhat, xmu, ivar, sqrtvar, var, eps, gamma)


def layernorm_backward(dy, cache):
    xhat, xmu, ivar, sqrtvar, var, eps, gamma = cache
    d = dy.shape[1]
    dbeta = np.sum(dy, axis=0)
    dgamma = np.sum(dy * xhat, axis=0)
    dxhat = dy * np.reshape(gamma, (1, -1))
    divar = np.sum(dxhat * xmu, axis=1, keepdims=True)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / (sqrtvar ** 2) * divar
    dvar = 0.5 / np.sqrt(var + eps) * dsqrtvar
    dsq = np.ones_like(dy) / d * dvar
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -np.sum(dx1, axis=1, keepdims=True)
    dx2 = np.ones_like(dy) / d * dmu
    return dx1 + dx2, np.reshape(dgamma, np.shape(gamma)), np.reshape(dbeta, np.shape(gamma))
