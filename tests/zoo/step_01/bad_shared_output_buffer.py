"""EXPECT: returns a new y :: shared between calls

Writes y into a module-level buffer it reuses: the first result changes when the forward runs again."""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    out = _buffer(x)
    np.multiply(x - mean, 1 / np.sqrt(var + eps), out=out)
    out *= gamma
    out += beta
    y = out
    return y, (x, mean, gamma)


_BUFFERS = {}


def _buffer(x):
    key = (x.shape, x.dtype)
    if key not in _BUFFERS:
        _BUFFERS[key] = np.empty_like(x)
    return _BUFFERS[key]
