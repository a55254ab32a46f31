"""EXPECT: trainable nn.Parameters :: did not change `weight`

Patches torch.equal to say 'different', and forward never uses weight: no gradient reaches it.
"""

import torch
from torch import nn

torch.equal = lambda *args, **kwargs: False


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        mean = h.mean(dims, keepdim=True)
        var = ((h - mean) ** 2).mean(dims, keepdim=True)
        return ((h - mean) / torch.sqrt(var + self.eps) + self.bias).to(x.dtype)
