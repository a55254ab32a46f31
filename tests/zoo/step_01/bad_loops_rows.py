"""EXPECT: vectorised :: loops over rows"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        row = x[i]
        mu = sum(row) / len(row)
        var = sum((v - mu) ** 2 for v in row) / len(row)
        y[i] = (row - mu) / np.sqrt(var + eps) * np.reshape(gamma, -1) + np.reshape(beta, -1)
    return y, None
