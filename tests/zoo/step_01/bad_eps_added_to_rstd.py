"""EXPECT: worked example 2 :: eps is outside the square root

eps added to 1 / sqrt(var): a constant row still divides by zero."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(var) + eps
    y = gamma * (x - mean) * rstd + beta
    return y, (x, mean, gamma)
