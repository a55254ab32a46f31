"""EXPECT: int normalized_shape :: float32 precision

Upcasts half inputs to float32, as it should, but downcasts float64 inputs to float32 too.
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = nn.Parameter(torch.ones(shape)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape)) if elementwise_affine and bias else None

    def forward(self, x):
        shape = self.normalized_shape
        if tuple(x.shape[x.dim() - len(shape):]) != shape:
            raise ValueError(f"expected input with shape [*, {', '.join(map(str, shape))}], but got input of size "
                             f"{list(x.shape)}")
        dims = tuple(range(-len(shape), 0))
        h = x.float()  # always float32: also for float64 inputs
        mean = h.mean(dim=dims, keepdim=True)
        var = (h - mean).square().mean(dim=dims, keepdim=True)
        y = (h - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.float()
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)
