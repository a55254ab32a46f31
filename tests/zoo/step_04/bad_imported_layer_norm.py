"""EXPECT: does not use nn.LayerNorm :: own layer norm

Imports layer_norm by name, before the checker can replace F.layer_norm.
"""

import torch
from torch import nn
from torch.nn.functional import layer_norm


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x):
        n = len(self.normalized_shape)
        if tuple(x.shape[-n:]) != self.normalized_shape:
            raise ValueError(f"expected input with shape [*, {self.normalized_shape}], got {list(x.shape)}")
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        dims = tuple(range(-n, 0))
        mean = h.mean(dims, keepdim=True)
        var = ((h - mean) ** 2).mean(dims, keepdim=True)
        y = layer_norm(h, self.normalized_shape, self.weight, self.bias, self.eps)
        return y.to(x.dtype)
