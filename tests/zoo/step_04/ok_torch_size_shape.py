"""EXPECT: pass

normalized_shape kept as a torch.Size (a tuple); the shape error names the trailing dims.
"""

import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-5):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = [normalized_shape]
        self.normalized_shape = torch.Size(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(*self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(*self.normalized_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"trailing dims {tuple(x.shape[x.ndim - k:])} do not match normalized_shape {tuple(self.normalized_shape)}")
        compute = torch.float32 if x.element_size() < 4 else x.dtype
        h = x.to(compute)
        var, mean = torch.var_mean(h, dim=list(range(x.ndim - k, x.ndim)), correction=0, keepdim=True)
        out = torch.addcmul(self.bias, (h - mean) * torch.rsqrt(var + self.eps), self.weight)
        return out.to(x.dtype)
