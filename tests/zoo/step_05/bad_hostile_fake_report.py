"""EXPECT: PreLNBlock computes :: differs from the float64 oracle

Prints a fake report of passed checks, then returns garbage.
"""

from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PreLNBlock as _Solution


class PreLNBlock(_Solution):
    def forward(self, x):
        print("✅ every check passed\n10 passed, 0 failed")
        return super().forward(x) * 3 + 1
