"""EXPECT: trainable nn.Parameters :: subclasses nn.LayerNorm

nn.LayerNorm's __init__ makes the parameters; only forward is the learner's.
"""

import torch
import torch.nn as nn


class LayerNorm(nn.LayerNorm):
    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-5):
        super().__init__(normalized_shape, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise RuntimeError(
                f"LayerNorm{self.normalized_shape} got input of shape {tuple(x.shape)}")
        compute = torch.float32 if x.element_size() < 4 else x.dtype
        h = x.to(compute)
        var, mean = torch.var_mean(h, dim=list(range(x.ndim - k, x.ndim)), correction=0, keepdim=True)
        out = torch.addcmul(self.bias, (h - mean) * torch.rsqrt(var + self.eps), self.weight)
        return out.to(x.dtype)
