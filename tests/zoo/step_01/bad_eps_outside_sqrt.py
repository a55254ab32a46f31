"""EXPECT: random inputs :: eps is outside the square root"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    y = (x - mean) / (x.std(axis=1, keepdims=True) + eps) * gamma + beta
    return y, None
