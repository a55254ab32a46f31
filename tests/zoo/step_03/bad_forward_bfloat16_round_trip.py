"""EXPECT: correct parameters :: casts its float32 values to bfloat16

forward runs F.layer_norm in bfloat16, then casts back to the input's dtype.
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
        low = DType.bfloat16
        y = F.layer_norm(x.cast(low), gamma=self.weight.cast(low), beta=self.bias.cast(low), epsilon=self.eps)
        return y.cast(x.dtype)


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

