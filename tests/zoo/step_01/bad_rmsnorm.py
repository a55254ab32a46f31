"""EXPECT: worked example 1 :: This is RMSNorm

RMSNorm where LayerNorm belongs: no mean anywhere."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = 0
    ms = (x * x).mean(axis=1, keepdims=True)
    y = gamma * x / np.sqrt(ms + eps) + beta
    return y, (x, mean, gamma)
