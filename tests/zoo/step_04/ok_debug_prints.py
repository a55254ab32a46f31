"""EXPECT: pass

A correct file that prints a lot of debug output on every call.
"""

from solutions.solution_04 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_04 import LayerNorm as _Solution


class LayerNorm(_Solution):
    def forward(self, x):
        print("debug:", "x" * 200_000)
        return super().forward(x)
