"""Step 04 — LayerNorm as a PyTorch module, with autograd doing the backward.

    y = weight * (x - mean) / sqrt(var + eps) + bias     (over the trailing normalized_shape dims)

with the *biased* variance (divide by the number of normalised elements) and eps *inside* the
square root. A drop-in for `torch.nn.LayerNorm`: same parameter names, same state_dict.

Check your work:  make s04   (or: pixi run s04)
Read:             docs/src/step_04.md
"""

import torch
from torch import nn


class LayerNorm(nn.Module):
    """Layer normalisation over the trailing `normalized_shape` dims, like `torch.nn.LayerNorm`."""

    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        """Create the learnable scale (`weight`, ones) and shift (`bias`, zeros).

        Args:
            normalized_shape: the trailing shape to normalise over: 512, or (seq, features).
            eps: added to the variance, inside the square root.
            elementwise_affine: learn `weight` (and `bias`); False leaves both None, as PyTorch does.
            bias: learn `bias` too; False leaves it None.
        """
        super().__init__()
        # ANCHOR: init
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        if elementwise_affine:
            # nn.Parameter: listed by .parameters() (the optimiser trains it), saved by state_dict()
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if bias else None
        else:
            self.weight = self.bias = None
        # ANCHOR_END: init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise `x` over its trailing dims, then scale and shift.

        Args:
            x: (..., *normalized_shape) tensor.

        Returns:
            A tensor of the shape and dtype of `x`.
        """
        # ANCHOR: forward
        shape = self.normalized_shape
        if tuple(x.shape[x.dim() - len(shape):]) != shape:
            raise ValueError(f"Given normalized_shape={list(shape)}, expected input with shape "
                             f"[*, {', '.join(map(str, shape))}], but got input of size {list(x.shape)}")
        dims = tuple(range(-len(shape), 0))                       # the trailing dims
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x   # statistics in float32
        mean = h.mean(dim=dims, keepdim=True)                     # (..., 1, 1)
        centred = h - mean
        var = centred.square().mean(dim=dims, keepdim=True)       # biased: divides by D
        y = centred * torch.rsqrt(var + self.eps)                 # eps inside the square root
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
        # ANCHOR_END: forward


if __name__ == "__main__":
    # Worked example: every position of a (batch, seq, 512) input comes out with mean 0 and std 1.
    layer_norm = LayerNorm(512)
    x = torch.randn(4, 10, 512)
    output = layer_norm(x)
    print(f"Input shape: {x.shape}")
    print(f"Output shape: {output.shape}")
    print(f"Mean (should be ~0): {output[0, 0].mean():.6f}")
    print(f"Std, biased (should be ~1): {output[0, 0].std(correction=0):.6f}")
    print(f"Std, torch's default unbiased (~1.001 for 512 features): {output[0, 0].std():.6f}")
    print(LayerNorm(4, eps=1e-4)(torch.tensor([[[2.0, 3.0, 5.0, 6.0]]])))  # [-1.2649, -0.6324, 0.6324, 1.2649]
