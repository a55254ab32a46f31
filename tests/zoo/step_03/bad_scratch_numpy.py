"""EXPECT: layer_norm_from_scratch :: reads values out of its input

layer_norm_from_scratch leaves MAX for NumPy and wraps the result back.
"""

from max.driver import CPU
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor, default_dtype
from max.graph import TensorType


class LayerNorm(Module):
    def __init__(self, dim, *, eps=1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Tensor.ones([dim])
        self.bias = Tensor.zeros([dim])

    def forward(self, x):
        return F.layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=self.eps)



def layer_norm_from_scratch(x, gamma, beta, eps):
    import numpy as np

    a, g, b = x.to_numpy(), gamma.to_numpy(), beta.to_numpy()
    mean = a.mean(axis=-1, keepdims=True)
    var = a.var(axis=-1, keepdims=True)
    return Tensor.from_dlpack(((a - mean) / np.sqrt(var + eps) * g + b).astype(np.float32))


def compile_layer_norm(dim, *, eps=1e-5, device=None, dtype=DType.float32, batch_dims=("batch",)):
    device = device or CPU()
    with default_dtype(dtype):
        layer = LayerNorm(dim, eps=eps)
    layer.to(device)
    return layer.compile(TensorType(dtype, [*batch_dims, dim], device=layer.device))

