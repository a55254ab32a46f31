"""EXPECT: worked example 1 :: outside the square root and the std is the unbiased

x.std(ddof=1) + eps: two mistakes that coincide with one at eps=0."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    y = gamma * (x - mean) / (x.std(axis=1, keepdims=True, ddof=1) + eps) + beta
    return y, (x, mean, gamma)
