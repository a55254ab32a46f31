"""EXPECT: pass

Flattens the normalised dims into one, normalises the last dim, and restores the shape;
supports nn.LayerNorm's keywords with register_parameter(None).
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        self.normalized_shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (
            normalized_shape,)
        self.eps = eps
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        shape = self.normalized_shape
        lead = x.shape[: x.dim() - len(shape)]
        if x.shape[x.dim() - len(shape):] != torch.Size(shape):
            raise ValueError(f"normalized_shape {list(shape)} does not match the input's trailing dims: "
                             f"input of size {list(x.shape)}")
        flat = x.reshape(*lead, -1)
        if flat.dtype in (torch.half, torch.bfloat16):
            flat = flat.float()
        mean = flat.mean(-1, keepdim=True)
        centred = flat - mean
        rstd = (centred.pow(2).mean(-1, keepdim=True) + self.eps).rsqrt()
        y = (centred * rstd).reshape(*lead, *shape)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.type(x.dtype)
