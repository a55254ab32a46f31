"""EXPECT: not modified :: modified in place"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    x -= x.mean(axis=1, keepdims=True)
    y = x / np.sqrt(x.var(axis=1, keepdims=True) + eps) * gamma + beta
    return y, None
