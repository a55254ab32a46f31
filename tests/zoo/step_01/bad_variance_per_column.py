"""EXPECT: worked example 1 :: variance is taken over the wrong axis

The mean per row, the variance per column."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=0, keepdims=True)
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, (x, mean, gamma)
