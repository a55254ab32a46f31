"""EXPECT: (1, D) :: (D,) parameters work but (1, D) ones do not"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    gamma = gamma.T if gamma.ndim == 2 else gamma
    beta = beta.T if beta.ndim == 2 else beta
    xhat = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    y = xhat * gamma + beta
    return y, None
