"""EXPECT: worked examples 3-4 :: mean absolute deviation

Divides by mean(|x - mean|) instead of the standard deviation."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    mad = np.abs(x - mean).mean(axis=1, keepdims=True)
    xhat = (x - mean) / (mad + eps)
    return gamma * xhat + beta, (x, mean)
