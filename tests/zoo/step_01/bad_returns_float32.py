"""EXPECT: worked example 1 :: expected float64

Float64 in, float32 out: a float32 constant array promotes nothing, the explicit cast does.
"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * np.reshape(gamma, (1, -1)) + np.reshape(beta, (1, -1))
    return y.astype(np.float32), None
