"""EXPECT: worked example 1 :: applied per row

gamma and beta reshaped (D, 1): on a square input they scale rows."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    y = gamma.reshape(-1, 1) * (x - mean) / np.sqrt(var + eps) + beta.reshape(-1, 1)
    return y, (x, mean, gamma)
