"""EXPECT: worked example 3 :: summed over every axis

dbeta = dy.sum(): one number."""

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
    dbeta = dy.sum()
    dx = (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std
    return dx, dgamma, dbeta
