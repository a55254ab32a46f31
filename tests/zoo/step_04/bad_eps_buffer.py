"""EXPECT: stored as a tuple and eps as given :: registered as a buffer

eps registered as a buffer: an extra state_dict key.
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.register_buffer("eps", torch.tensor(eps))
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
        y = (h - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return y.to(x.dtype)
