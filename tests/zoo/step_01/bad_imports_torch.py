"""EXPECT: NumPy only :: imports torch"""

import numpy as np
import torch


def layernorm_forward(x, gamma, beta, eps=1e-5):
    t = torch.nn.functional.layer_norm(torch.from_numpy(x), x.shape[-1:], torch.from_numpy(np.reshape(gamma, -1)),
                                       torch.from_numpy(np.reshape(beta, -1)), eps)
    return t.numpy(), None
