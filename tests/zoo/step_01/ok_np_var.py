"""EXPECT: pass"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    mu = np.mean(x, axis=-1, keepdims=True)
    sigma = np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)
    y = (x - mu) / sigma * np.reshape(gamma, (1, -1)) + np.reshape(beta, (1, -1))
    return y, None
