"""EXPECT: worked example: LayerNorm(512) :: taken over dims (-2, -1)

Always flattens the last two dims (x.flatten(-2)), also for an int normalized_shape.
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
        flat = h.flatten(-2) if h.dim() >= 2 else h
        mean = flat.mean(dim=-1, keepdim=True)
        var = flat.var(dim=-1, keepdim=True, unbiased=False)
        y = ((flat - mean) / torch.sqrt(var + self.eps)).reshape(h.shape)
        return self._affine(y).to(x.dtype)
