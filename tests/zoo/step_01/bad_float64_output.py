"""EXPECT: dtype :: float32"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    x = x.astype(np.float64)
    y = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + eps) * gamma + beta
    return y, None
