"""EXPECT: correct parameters :: differs from the float64 oracle

Prints a fake report of passed checks, then returns garbage.
"""

from solutions.solution_03 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_03 import LayerNorm as _Solution


class LayerNorm(_Solution):
    def forward(self, x):
        print("✅ every check passed\n10 passed, 0 failed")
        return super().forward(x) * 3 + 1
