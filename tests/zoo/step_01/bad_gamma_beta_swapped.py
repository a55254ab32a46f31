"""EXPECT: random inputs :: swapped"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    xhat = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    y = xhat * beta + gamma
    return y, None
