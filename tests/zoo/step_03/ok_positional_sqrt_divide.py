"""EXPECT: pass

Positional F.layer_norm arguments; the composition divides by F.sqrt instead of F.rsqrt.
"""

from max.driver import CPU
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor
from max.graph import TensorType


class LayerNorm(Module):
    def __init__(self, dim, *, eps=1e-5):
        self.weight, self.bias, self.eps, self.dim = Tensor.ones([dim]), Tensor.zeros([dim]), eps, dim

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)


def layer_norm_from_scratch(x, gamma, beta, eps):
    centred = x - F.mean(x)                       # axis=-1 is the default
    std = F.sqrt(F.mean(centred * centred) + eps)
    return gamma * (centred / std) + beta


def compile_layer_norm(dim, *, eps=1e-5, device=None, dtype=DType.float32, batch_dims=("batch",)):
    layer = LayerNorm(dim, eps=eps).to(device or CPU())
    return layer.compile(TensorType(dtype, [*batch_dims, dim], device=layer.device))
