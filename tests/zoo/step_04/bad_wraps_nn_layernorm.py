"""EXPECT: does not use nn.LayerNorm :: holds an nn.LayerNorm

Wraps the built-in module.
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.inner = nn.LayerNorm(self.normalized_shape, eps=eps)

    def forward(self, x):
        n = len(self.normalized_shape)
        if tuple(x.shape[-n:]) != self.normalized_shape:
            raise ValueError(f"expected input with shape [*, {self.normalized_shape}], got {list(x.shape)}")
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        dims = tuple(range(-n, 0))
        mean = h.mean(dims, keepdim=True)
        var = ((h - mean) ** 2).mean(dims, keepdim=True)
        y = self.inner(h)
        return y.to(x.dtype)
