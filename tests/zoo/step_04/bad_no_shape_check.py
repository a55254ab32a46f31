"""EXPECT: shape mismatch :: does not name both shapes

No shape check: broadcasting produces a vague error, or none.
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x):
        n = len(self.normalized_shape)
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        dims = tuple(range(-n, 0))
        mean = h.mean(dims, keepdim=True)
        var = ((h - mean) ** 2).mean(dims, keepdim=True)
        y = (h - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return y.to(x.dtype)
