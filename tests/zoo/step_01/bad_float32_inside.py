"""EXPECT: random inputs :: float32 precision

Computes in float32 to "save memory" and casts back: the dtype is right, the digits are not.
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    h = x.astype(np.float32)
    mean = h.mean(axis=1, keepdims=True)
    var = ((h - mean) ** 2).mean(axis=1, keepdims=True)
    y = (h - mean) / np.sqrt(var + np.float32(eps)) * np.reshape(gamma, (1, -1)) + np.reshape(beta, (1, -1))
    return y.astype(x.dtype), None
