"""EXPECT: random inputs :: mean is not subtracted"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    y = x / np.sqrt(x.var(axis=1, keepdims=True) + eps) * gamma + beta
    return y, None
