"""EXPECT: worked example 1 :: divided by gamma

xhat / gamma where gamma * xhat belongs."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    xhat = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    return xhat / gamma + beta, None
