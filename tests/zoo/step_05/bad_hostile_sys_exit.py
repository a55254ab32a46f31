"""EXPECT: PreLNBlock computes :: sys.exit()

Calls sys.exit(0) inside a method: the checker must report it, not stop.
"""

import sys
from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PreLNBlock as _Solution


class PreLNBlock(_Solution):
    def forward(self, x):
        sys.exit(0)
