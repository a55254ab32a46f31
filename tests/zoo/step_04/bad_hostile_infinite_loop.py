"""EXPECT: trainable nn.Parameters :: CPU

An infinite loop inside a method: caught by the CPU-time limit (scaled down here).

OPTIONS: --timeout-scale 0.1
"""

from solutions.solution_04 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_04 import LayerNorm as _Solution


class LayerNorm(_Solution):
    def forward(self, x):
        while True:
            pass
