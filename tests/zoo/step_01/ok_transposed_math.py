"""EXPECT: pass"""

import numpy as np


def layernorm_forward(x, gamma, beta, eps=1e-5):
    xt = x.T  # (D, N): statistics along axis 0 of the transpose are per row of x
    mean = xt.mean(axis=0)
    rstd = (((xt - mean) ** 2).mean(axis=0) + eps) ** -0.5
    y = (((xt - mean) * rstd).T * gamma.reshape(-1) + beta.reshape(-1))
    return y, None
