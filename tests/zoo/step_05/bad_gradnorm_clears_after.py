"""EXPECT: gradient_norms gives :: before loss.backward(), not after

Clears the gradients after reading them: right on a fresh stack, wrong when .grad holds an earlier pass.
"""

import torch

from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PostLNBlock, PreLNBlock


def gradient_norms(stack, x, readout):
    (stack(x) @ readout).mean().backward()
    blocks = [m for m in stack if isinstance(m, (PreLNBlock, PostLNBlock))]
    norms = [torch.sqrt(sum(p.grad.square().sum() for p in b.parameters())).item() for b in blocks]
    stack.zero_grad()  # too late: the first call read whatever was there before
    return norms
