"""EXPECT: worked example 1 :: or the whole array

The mean per row, the variance of the whole array."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.var(x)
    xhat = (x - mean) / np.sqrt(var + eps)
    return gamma * xhat + beta, (x, mean)
