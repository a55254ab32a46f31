"""EXPECT: pass

Explicit sums divided by the element count; half inputs upcast to float64.
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if type(normalized_shape) is int:
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if elementwise_affine and bias else None

    def forward(self, x):
        dims = [-(i + 1) for i in range(len(self.normalized_shape))]
        if list(x.shape[len(x.shape) - len(dims):]) != list(self.normalized_shape):
            raise ValueError(f"Given normalized_shape={list(self.normalized_shape)}, "
                             f"expected input with shape [*, {', '.join(map(str, self.normalized_shape))}], "
                             f"but got input of size{list(x.shape)}")
        h = x.double() if x.dtype in (torch.float16, torch.bfloat16) else x
        count = self.weight.numel() if self.weight is not None else h[(0,) * (h.dim() - len(dims))].numel()
        mean = h.sum(dim=dims, keepdim=True) / count
        c = h - mean
        var = (c * c).sum(dim=dims, keepdim=True) / count
        y = c / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = self.weight * y
        if self.bias is not None:
            y = y + self.bias
        return y.to(dtype=x.dtype)
