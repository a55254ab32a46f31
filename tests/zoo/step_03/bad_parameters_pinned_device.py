"""EXPECT: weight is initialized :: fixed device

The parameters are pinned to the CPU (device=CPU()); on a GPU the input would be elsewhere.
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
        self.weight = Tensor.ones([dim], device=CPU())
        self.bias = Tensor.zeros([dim], device=CPU())

    def forward(self, x):
        return F.layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=self.eps)


def layer_norm_from_scratch(x, gamma, beta, eps):
    mean = F.mean(x, axis=-1)
    centred = x - mean
    var = F.mean(centred * centred, axis=-1)
    return centred * F.rsqrt(var + eps) * gamma + beta


def compile_layer_norm(dim, *, eps=1e-5, device=None, dtype=DType.float32, batch_dims=("batch",)):
    device = device or CPU()
    with default_dtype(dtype):
        layer = LayerNorm(dim, eps=eps)
    layer.to(device)
    return layer.compile(TensorType(dtype, [*batch_dims, dim], device=layer.device))

