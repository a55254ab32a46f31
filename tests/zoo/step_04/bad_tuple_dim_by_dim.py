"""EXPECT: tuple normalized_shape :: one dim at a time

Tuple normalized_shape handled by normalising over each trailing dim in turn.
"""
import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if bias else None
        else:
            self.weight = self.bias = None

    def _check(self, x):
        shape = self.normalized_shape
        if tuple(x.shape[x.dim() - len(shape):]) != shape:
            raise ValueError(f"expected input with shape [*, {', '.join(map(str, shape))}], got {list(x.shape)}")

    def _affine(self, y):
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def forward(self, x):
        self._check(x)
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        for d in range(-len(self.normalized_shape), 0):
            mean = h.mean(dim=d, keepdim=True)
            var = h.var(dim=d, keepdim=True, unbiased=False)
            h = (h - mean) / torch.sqrt(var + self.eps)
        return self._affine(h).to(x.dtype)
