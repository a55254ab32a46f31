"""EXPECT: worked example 1 :: mean of x², not of (x - mean)²

The variance as the mean of the squares, without centring them."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = (x ** 2).mean(axis=1, keepdims=True)
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, (x, mean, gamma)
