"""EXPECT: worked example 1 :: lost their row axis"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1)
    var = x.var(axis=1)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return y, None
