"""EXPECT: pass

Other import styles: layer_norm by name, the tensor module, Tensor methods for the composition.
"""

import max.experimental.functional as fn
from max.driver import CPU
from max.dtype import DType
from max.experimental import tensor
from max.experimental.functional import layer_norm
from max.experimental.nn import Module
from max.graph import TensorType


class LayerNorm(Module):
    def __init__(self, dim: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = tensor.Tensor.ones([dim])
        self.bias = tensor.Tensor.zeros([dim])

    def forward(self, x):
        return layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=self.eps)


def layer_norm_from_scratch(x, gamma, beta, eps):
    mean = x.mean(axis=-1)
    var = ((x - mean) ** 2).mean(axis=-1)
    return (x - mean) * fn.rsqrt(var + eps) * gamma + beta


def compile_layer_norm(dim, *, eps=1e-5, device=None, dtype=DType.float32, batch_dims=("batch",)):
    layer = LayerNorm(dim, eps=eps)
    if device is not None:
        layer.to(device)
    input_type = TensorType(dtype, list(batch_dims) + [dim], device=layer.device)
    return layer.compile(input_type)
