"""EXPECT: random inputs :: The centring is off

Centred on the median: a mistake no catalogued one explains, named by the part that is off."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    centre = np.median(x, axis=1, keepdims=True)
    var = ((x - centre) ** 2).mean(axis=1, keepdims=True)
    return gamma * (x - centre) / np.sqrt(var + eps) + beta, None
