"""Step 06 — your own LayerNorm kernel in Mojo, registered as a MAX custom op.

This folder is a Mojo package (it has an `__init__.mojo`): `layer_norm.mojo` registers two
kernels, `layer_norm_naive` (given) and `layer_norm_fast` (yours to write). This file is the
Python side: declare a kernel as an op, call it eagerly, use it inside a Module, and compile that
Module once for every batch size.

Your tasks: the fast kernel in layer_norm.mojo, then `MojoLayerNorm.forward` and
`compile_mojo_layer_norm` below; then, for a GPU, the fast kernel's GPU path (the GPU checks run
where MAX sees a GPU, and are skipped elsewhere). Check with `make s06` (or `pixi run s06`).
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
        # TODO-BLOCK: forward
        # TODO: return the custom op applied to x with this module's weight, bias, eps and kernel
        # (mojo_layer_norm above works on graph values too, so the Module traces it into a graph).
        raise NotImplementedError("MojoLayerNorm.forward")
        # TODO-BLOCK-END: forward


def compile_mojo_layer_norm(dim: int, *, kernel: str = "fast", eps: float = 1e-5, weight=None,
                            bias=None, device: Device | None = None):
    """A compiled graph taking x (N, dim) float32 to LayerNorm(x), for any batch size N, on `device`.

    `weight` and `bias` (gamma and beta, arrays of shape (dim,)) default to ones and zeros.
    Call the result with a Tensor on that device: `run(Tensor.from_dlpack(x).to(device))`.
    """
    device = CPU() if device is None else device
    if kernel == "naive" and not device.is_host:
        raise ValueError('The naive kernel runs on the CPU only: pass device=CPU(), or kernel="fast".')
    # TODO-BLOCK: compile
    # TODO: build a MojoLayerNorm(dim, eps=eps, kernel=kernel); when `weight` / `bias` are given,
    # replace its weight / bias with Tensor.from_dlpack(np.ascontiguousarray(weight, np.float32)), and
    # move it to the device: layer.to(device). Then compile it for inputs of type
    # TensorType(DType.float32, ["batch", dim], device_ref),
    # where device_ref = DeviceRef.from_device(device): the string "batch" makes the first
    # dimension symbolic, so one compiled graph serves every batch size. Return layer.compile(...).
    raise NotImplementedError("compile_mojo_layer_norm")
    # TODO-BLOCK-END: compile
# ANCHOR_END: module
