"""EXPECT: compiled Module :: the Python glue is wrong

forward leaves eps out of the op call: the kernel is right, the glue is not.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from max.driver import CPU, Device
from max.dtype import DType
from max.experimental.custom import Symbols, TemplateType, declare
from max.experimental.nn import Module
from max.experimental.tensor import Tensor, TensorType
from max.graph import DeviceRef

KERNEL_PACKAGE = Path(__file__).resolve().parent  # the folder MAX compiles
KERNELS = {"naive": "layer_norm_naive", "fast": "layer_norm_fast"}  # as registered in Mojo


@cache  # declaring runs `mojo precompile` on the package: once per (kernel, eps) is enough
def layer_norm_op(kernel: str = "fast", eps: float = 1e-5):
    """The custom op running the Mojo kernel `kernel` ("fast" or "naive") with this epsilon."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    # ANCHOR: declare
    rows, width = Symbols("rows", "width")  # shared names: gamma and beta must match x's width
    return declare(
        KERNELS[kernel],
        inputs={
            "x": TemplateType(DType.float32, [rows, width]),
            "gamma": TemplateType(DType.float32, [width]),
            "beta": TemplateType(DType.float32, [width]),
        },
        outputs=[TemplateType(DType.float32, [rows, width])],
        parameters={"epsilon": float(eps)},  # arrives in Mojo as LayerNormFast[epsilon: Float32]
        custom_extensions=[KERNEL_PACKAGE],
    )
    # ANCHOR_END: declare


def mojo_layer_norm(x, gamma, beta, eps: float = 1e-5, kernel: str = "fast"):
    """LayerNorm of each row of `x` (N, D) float32 with a Mojo kernel.

    Eager Tensors in, a Tensor out; inside a Module's `forward` it works on graph values the same
    way. `gamma` and `beta` are (D,).
    """
    return layer_norm_op(kernel, float(eps))(x, gamma, beta)


# ANCHOR: module
class MojoLayerNorm(Module):
    """LayerNorm over the last axis of (N, dim) inputs, computed by the Mojo kernel."""

    def __init__(self, dim: int, eps: float = 1e-5, kernel: str = "fast"):
        super().__init__()
        self.eps = eps
        self.kernel = kernel
        self.weight = Tensor.ones([dim], dtype=DType.float32, device=CPU())  # gamma
        self.bias = Tensor.zeros([dim], dtype=DType.float32, device=CPU())  # beta

    def forward(self, x: Tensor) -> Tensor:
        # ANCHOR: forward
        return mojo_layer_norm(x, self.weight, self.bias, kernel=self.kernel)  # eps left at its default
        # ANCHOR_END: forward


def compile_mojo_layer_norm(dim: int, *, kernel: str = "fast", eps: float = 1e-5, weight=None,
                            bias=None, device: Device | None = None):
    """A compiled graph taking x (N, dim) float32 to LayerNorm(x), for any batch size N, on `device`.

    `weight` and `bias` (gamma and beta, arrays of shape (dim,)) default to ones and zeros.
    Call the result with a Tensor on that device: `run(Tensor.from_dlpack(x).to(device))`.
    """
    device = CPU() if device is None else device
    if kernel == "naive" and not device.is_host:
        raise ValueError('The naive kernel runs on the CPU only: pass device=CPU(), or kernel="fast".')
    # ANCHOR: compile
    layer = MojoLayerNorm(dim, eps=eps, kernel=kernel)
    if weight is not None:
        layer.weight = Tensor.from_dlpack(np.ascontiguousarray(weight, dtype=np.float32))
    if bias is not None:
        layer.bias = Tensor.from_dlpack(np.ascontiguousarray(bias, dtype=np.float32))
    layer.to(device)  # the weights live where the graph runs
    # "batch" is a symbolic dimension: one compiled graph serves every N; dim stays static.
    batch_type = TensorType(DType.float32, ["batch", dim], DeviceRef.from_device(device))
    return layer.compile(batch_type)
    # ANCHOR_END: compile
# ANCHOR_END: module
