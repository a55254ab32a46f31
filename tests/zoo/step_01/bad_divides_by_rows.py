"""EXPECT: worked examples 3-4 :: number of rows N

The variance divides its sum by x.shape[0], the rows, instead of the D features."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).sum(axis=1, keepdims=True) / x.shape[0]
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, (x, mean, gamma)
