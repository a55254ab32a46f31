"""EXPECT: pass"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    y = ((x64 - mean) / np.sqrt(x64.var(axis=1, keepdims=True) + eps) * gamma.reshape(1, -1) + beta.reshape(1, -1))
    y = y.astype(x.dtype)
    return y, None
