"""EXPECT: random inputs :: unbiased"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, ddof=1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return y, None
