"""EXPECT: numerically stable :: a negative variance

E[x²] - E[x]² without a guard: on rows with a large mean it rounds below zero, and its root is NaN."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = (x * x).mean(axis=1, keepdims=True) - mean * mean
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return y, None
