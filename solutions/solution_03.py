"""Step 03 — LayerNorm as a Modular MAX module.

    y = gamma * (x - mean) / sqrt(var + eps) + beta      (over the last axis)

with the *biased* variance (divide by dim) and eps *inside* the square root. The module calls
MAX's fused `F.layer_norm`; `layer_norm_from_scratch` composes the same maths from MAX
primitives; `compile_layer_norm` turns the module into one compiled graph whose batch
dimensions are symbolic, so it serves every batch size without recompiling.

MAX 26.7 API: `Module` comes from `max.experimental.nn` and subclasses implement `forward`.
(Older tutorials imported `max.nn.module_v3` and overrode `__call__`; both are gone.)

Check your work with `make s03` (or `pixi run s03`). Page: docs/src/step_03.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from max.driver import CPU, Device
from max.dtype import DType
from max.experimental.nn import Module
from max.experimental.tensor import default_dtype
from max.graph import TensorType
# ANCHOR: imports
from max.experimental import functional as F
from max.experimental.tensor import Tensor
# ANCHOR_END: imports


# ANCHOR: module
class LayerNorm(Module):
    """Layer normalisation over the last axis, with a learned scale and shift."""

    def __init__(self, dim: int, *, eps: float = 1e-5):
        super().__init__()
        if not eps > 0:
            raise ValueError("eps must be a positive float (it keeps sqrt(var + eps) above zero); "
                             f"got {eps!r}")
        self.dim = dim
        self.eps = eps
        # ANCHOR: parameters
        self.weight = Tensor.ones([dim])   # gamma, [dim]: starts as "scale by 1"
        self.bias = Tensor.zeros([dim])    # beta, [dim]: starts as "shift by 0"
        # ANCHOR_END: parameters

    def forward(self, x: Tensor) -> Tensor:
        """Normalise `x` (..., dim) over its last axis; returns the same shape and dtype."""
        _check_input(x, self.dim, self.weight.dtype)
        # ANCHOR: forward
        return F.layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=self.eps)
        # ANCHOR_END: forward
# ANCHOR_END: module


def _check_input(x, dim: int, dtype: DType) -> None:
    """Bad input fails here, saying what was expected, rather than deep inside a kernel."""
    if not isinstance(x, Tensor):
        raise TypeError(f"LayerNorm expects a max Tensor, got {type(x).__name__}; "
                        "wrap NumPy arrays with Tensor.from_dlpack(array).")
    if not isinstance(dtype, DType):
        raise TypeError("LayerNorm's parameters must be MAX Tensors (Tensor.ones([dim]), Tensor.zeros([dim])); "
                        f"self.weight's dtype is {dtype!r}, not a MAX DType.")
    if x.rank == 0 or x.shape[-1] != dim:
        shape = ", ".join(str(d) for d in x.shape)
        raise ValueError(f"LayerNorm({dim}) expects inputs of shape (..., {dim}), got ({shape}).")
    if not x.dtype.is_float():
        raise TypeError(f"LayerNorm expects floating-point input, got {x.dtype.name}; "
                        f"cast it with x.cast(DType.{dtype.name}).")
    if x.dtype != dtype:
        raise TypeError(f"LayerNorm's parameters are {dtype.name} but the input is "
                        f"{x.dtype.name}; cast it with x.cast(DType.{dtype.name}).")


# ANCHOR: from_scratch
def layer_norm_from_scratch(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor:
    """The same normalisation composed from MAX primitives (no F.layer_norm)."""
    # ANCHOR: scratch
    mean = F.mean(x, axis=-1)                   # (..., 1): MAX reductions keep the reduced axis
    centred = x - mean                          # (..., dim)
    var = F.mean(centred * centred, axis=-1)    # (..., 1), biased: divides by dim
    rstd = F.rsqrt(var + eps)                   # 1 / sqrt(var + eps): eps inside the root
    return centred * rstd * gamma + beta        # gamma, beta: [dim], broadcast over the rows
    # ANCHOR_END: scratch
# ANCHOR_END: from_scratch


# ANCHOR: compile
def compile_layer_norm(dim: int, *, eps: float = 1e-5, device: Device | None = None,
                       dtype: DType = DType.float32, batch_dims: Sequence[str] = ("batch",)):
    """Compile a LayerNorm(dim) once; the result accepts any sizes for `batch_dims`.

    Named dims ("batch", or ("batch", "seq")) are symbolic: one graph serves every batch size.
    The weights are the module's current values (ones and zeros for a fresh module).
    """
    device = device or CPU()
    with default_dtype(dtype):
        layer = LayerNorm(dim, eps=eps)
    layer.to(device)  # weights live where the graph runs
    # ANCHOR: compile_call
    input_type = TensorType(dtype, [*batch_dims, dim], device=layer.device)
    return layer.compile(input_type)
    # ANCHOR_END: compile_call
# ANCHOR_END: compile
