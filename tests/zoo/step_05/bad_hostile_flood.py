"""EXPECT: PreLNBlock computes :: output is 2 times x + ff(ln(x))

Prints 5 MB per call, then returns a wrong result.
"""

from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PreLNBlock as _Solution


class PreLNBlock(_Solution):
    def forward(self, x):
        print("x" * 5_000_000)
        return super().forward(x) * 2
