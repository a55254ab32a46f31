"""EXPECT: numerically stable :: E[x²] - E[x]²"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = (x * x).mean(axis=1, keepdims=True) - mean * mean
    y = (x - mean) / np.sqrt(np.maximum(var, 0) + eps) * gamma + beta
    return y, None
