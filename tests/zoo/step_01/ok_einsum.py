"""EXPECT: pass"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    d = x.shape[1]
    centred = x - np.einsum("nd->n", x)[:, None] / d
    var = np.einsum("nd,nd->n", centred, centred)[:, None] / d
    y = centred * (1.0 / np.sqrt(var + eps)) * np.ravel(gamma) + np.ravel(beta)
    return y, None
