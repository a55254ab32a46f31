"""EXPECT: worked example 1 :: variance is summed, not averaged

Divides the centred row by its norm: the square root of the sum of squares, not of their mean."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    y = gamma * (x - mean) / (np.linalg.norm(x - mean, axis=1, keepdims=True) + eps) + beta
    return y, (x, mean, gamma)
