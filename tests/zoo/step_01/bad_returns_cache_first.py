"""EXPECT: worked example 1 :: returns (cache, y)

The two return values in the wrong order."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return (x, mean, var), y
