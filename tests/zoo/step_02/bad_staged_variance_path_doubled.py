"""EXPECT: path through the variance :: The path through the variance, -rstd * xhat * mean(g * xhat), is off

The staged graph with dvar missing its -1/2 (and dmean its dvar part): no catalogued mistake, named by the term that is off."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    xc = x - mean
    var = (xc ** 2).mean(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xhat, xc, std, var, gamma, eps)


def layernorm_backward(dy, cache):
    xhat, xc, std, var, gamma, eps = cache
    D = xhat.shape[1]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    dvar = (dxhat * xc).sum(axis=1, keepdims=True) * -1.0 * std ** -3
    dmean = -(dxhat / std).sum(axis=1, keepdims=True)
    dx = dxhat / std + dvar * 2 * xc / D + dmean / D
    return dx, dgamma, dbeta
