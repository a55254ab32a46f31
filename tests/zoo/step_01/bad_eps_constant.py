"""EXPECT: worked example 1 :: the result is the one for eps=1e-6

A constant copied from other code where the eps argument belongs."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    y = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-6) * gamma + beta
    return y, None
