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
        # TODO-BLOCK: init
        # TODO 1: store normalized_shape as a tuple ((512,) for 512), and eps.
        # Hint: isinstance(normalized_shape, int) tells the two cases apart.
        self.normalized_shape = None
        self.eps = None

        # TODO 2: weight (ones) and bias (zeros), both shaped normalized_shape, as nn.Parameter.
        # A plain tensor would not be listed by .parameters(): the optimiser would never train it.
        # With elementwise_affine=False both are None; with bias=False only bias is None.
        self.weight = None
        self.bias = None
        # TODO-BLOCK-END: init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise `x` over its trailing dims, then scale and shift.

        Args:
            x: (..., *normalized_shape) tensor.

        Returns:
            A tensor of the shape and dtype of `x`.
        """
        # TODO-BLOCK: forward
        # TODO 3: raise an error naming both shapes when x's trailing dims are not normalized_shape
        # (nn.LayerNorm: "expected input with shape [*, 8], but got input of size [3, 7]").

        # TODO 4: float16/bfloat16 inputs: compute in float32 (h = x.float()), cast back at the end.

        # TODO 5: mean and *biased* variance over the trailing len(normalized_shape) dims, keepdim=True.
        # Careful: torch.var and torch.std divide by D-1 unless told otherwise (correction=0).
        # Keep them ordinary torch operations on x: no .detach(), .item() or NumPy, or autograd loses dx.

        # TODO 6: x_hat = (x - mean) / sqrt(var + eps), then weight and bias (when they are not None).
        raise NotImplementedError("TODO 3-6: LayerNorm.forward")
        # TODO-BLOCK-END: forward


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
