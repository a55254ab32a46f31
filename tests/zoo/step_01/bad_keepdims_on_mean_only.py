"""EXPECT: worked examples 3-4 :: without keepdims=True

keepdims on the mean but not on the variance: NumPy cannot broadcast (N, D) with (N,)."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1)
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, (x, mean, gamma)
