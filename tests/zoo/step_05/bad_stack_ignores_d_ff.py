"""EXPECT: build_stack :: ignores d_ff

Hard-codes the feed-forward width as 4 * d_model, which happens to be the experiment's d_ff.
"""

from torch import nn

from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PostLNBlock, PreLNBlock


def build_stack(kind, n_layers, d_model, d_ff):
    block = {"pre": PreLNBlock, "post": PostLNBlock}[kind]
    layers = [block(d_model, 4 * d_model) for _ in range(n_layers)]
    if kind == "pre":
        layers.append(nn.LayerNorm(d_model))
    return nn.Sequential(*layers)
