"""EXPECT: worked example 2 :: eps is not added"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    y = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True)) * gamma + beta
    return y, None
