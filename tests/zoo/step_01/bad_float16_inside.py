"""EXPECT: worked examples 3-4 :: float16 precision

Computes in float16 and casts back."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    h = x.astype(np.float16)
    mean = h.mean(axis=1, keepdims=True)
    var = h.var(axis=1, keepdims=True)
    y = (gamma * (h - mean) / np.sqrt(var + eps) + beta).astype(x.dtype)
    return y, (x, mean, gamma)
