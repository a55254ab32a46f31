"""EXPECT: gradient_norms gives :: torch.no_grad()

The forward runs under torch.no_grad(): the loss has no graph.
"""

import torch
from torch import nn


def feed_forward(d_model: int, d_ff: int) -> nn.Sequential:
    """Linear -> GELU -> Linear, Xavier-initialised with zero biases, as in Xiong et al."""
    ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
    for layer in (ff[0], ff[2]):
        nn.init.xavier_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
    return ff


class PreLNBlock(nn.Module):
    """x + ff(ln(x)): the sublayer sees a normalised input; the residual stream itself is never normalised."""

    def __init__(self, d_model: int, d_ff: int):
        """A LayerNorm over d_model features and a feed-forward sublayer d_model -> d_ff -> d_model."""
        super().__init__()
        self.ln = nn.LayerNorm(d_model)
        self.ff = feed_forward(d_model, d_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_model) -> (..., d_model)."""
        # ANCHOR: pre
        return x + self.ff(self.ln(x))
        # ANCHOR_END: pre


class PostLNBlock(nn.Module):
    """ln(x + ff(x)): the sum of the residual and the sublayer is normalised on its way out."""

    def __init__(self, d_model: int, d_ff: int):
        """A LayerNorm over d_model features and a feed-forward sublayer d_model -> d_ff -> d_model."""
        super().__init__()
        self.ln = nn.LayerNorm(d_model)
        self.ff = feed_forward(d_model, d_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_model) -> (..., d_model)."""
        # ANCHOR: post
        return self.ln(x + self.ff(x))
        # ANCHOR_END: post


def build_stack(kind: str, n_layers: int, d_model: int, d_ff: int) -> nn.Sequential:
    """`n_layers` new blocks of `kind` ("pre" or "post") in an nn.Sequential.

    A Pre-LN stack ends with one more nn.LayerNorm(d_model): its residual stream is never
    normalised inside the blocks. A Post-LN stack needs none (its last block ends with one).
    """
    # ANCHOR: stack
    block = {"pre": PreLNBlock, "post": PostLNBlock}[kind]
    layers = [block(d_model, d_ff) for _ in range(n_layers)]     # new blocks: no shared weights
    if kind == "pre":
        layers.append(nn.LayerNorm(d_model))
    return nn.Sequential(*layers)
    # ANCHOR_END: stack


def gradient_norms(stack: nn.Sequential, x: torch.Tensor, readout: torch.Tensor) -> list[float]:
    """The gradient norm of each block's parameters for loss = mean over rows of stack(x) @ readout.

    Args:
        stack: from build_stack; its blocks are the PreLNBlock/PostLNBlock entries.
        x: (batch, d_model) input.
        readout: (d_model,) fixed vector: a linear read-out, the same for every row.

    Returns:
        One float per block, input side first: sqrt of the sum of its squared parameter gradients.
    """
    stack.zero_grad()
    with torch.no_grad():
        out = stack(x)
    loss = (out @ readout).mean()
    loss.backward()
    blocks = [m for m in stack if isinstance(m, (PreLNBlock, PostLNBlock))]
    return [torch.sqrt(sum(p.grad.square().sum() for p in b.parameters())).item() for b in blocks]


def hidden_rms(stack: nn.Sequential, x: torch.Tensor) -> list[float]:
    """The root-mean-square of the hidden state after each block (the forward view)."""
    sizes = []
    with torch.no_grad():
        for module in stack:
            x = module(x)
            if isinstance(module, (PreLNBlock, PostLNBlock)):
                sizes.append(x.square().mean().sqrt().item())
    return sizes


def run_experiment(n_layers: int = 12, d_model: int = 64, d_ff: int = 256, batch: int = 64,
                   seeds=range(8)) -> dict:
    """Both stacks at initialisation, averaged over `seeds`: per-block gradient norms and hidden RMS.

    Returns:
        {"pre": {"grad_norms": [...], "hidden_rms": [...]}, "post": {...}}, one value per block.
    """
    results = {}
    for kind in ("pre", "post"):
        grads, sizes = [], []
        for seed in seeds:
            torch.manual_seed(seed)                              # same x and readout for both kinds
            x, readout = torch.randn(batch, d_model), torch.randn(d_model)
            stack = build_stack(kind, n_layers, d_model, d_ff)
            grads.append(gradient_norms(stack, x, readout))
            sizes.append(hidden_rms(stack, x))
        results[kind] = {"grad_norms": torch.tensor(grads).mean(0).tolist(),
                         "hidden_rms": torch.tensor(sizes).mean(0).tolist()}
    return results


if __name__ == "__main__":
    results = run_experiment()
    print("block  grad norm: Pre-LN  Post-LN   hidden RMS: Pre-LN  Post-LN")
    pre, post = results["pre"], results["post"]
    columns = zip(pre["grad_norms"], post["grad_norms"], pre["hidden_rms"], post["hidden_rms"], strict=True)
    for i, row in enumerate(columns):
        print(f"{i + 1:5d}  {row[0]:17.3f} {row[1]:8.3f}  {row[2]:18.3f} {row[3]:8.3f}")
