"""EXPECT: pass

A base class holding the parameters, forward on the subclass, a two-step composition.
"""

from max.driver import CPU
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor
from max.graph import TensorType


class _Affine(Module):
    def __init__(self, dim):
        self.weight = Tensor.ones([dim])
        self.bias = Tensor.zeros([dim])


class LayerNorm(_Affine):
    def __init__(self, dim, *, eps=1e-5):
        super().__init__(dim)
        self.eps = eps

    def forward(self, x):
        y = F.layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=self.eps)
        return y


def _normalise(x, eps):
    centred = x - F.mean(x, axis=-1)
    return centred * F.rsqrt(F.mean(centred * centred, axis=-1) + eps)


def layer_norm_from_scratch(x, gamma, beta, eps):
    return _normalise(x, eps) * gamma + beta


def compile_layer_norm(dim, *, eps=1e-5, device=None, dtype=DType.float32, batch_dims=("batch",)):
    device = device or CPU()
    layer = LayerNorm(dim, eps=eps)
    layer.to(device)
    return layer.compile(TensorType(dtype, [*batch_dims, dim], device=device))
