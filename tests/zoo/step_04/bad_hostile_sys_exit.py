"""EXPECT: trainable nn.Parameters :: sys.exit()

Calls sys.exit(0) inside a method: the checker must report it, not stop.
"""

import sys
from solutions.solution_04 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_04 import LayerNorm as _Solution


class LayerNorm(_Solution):
    def forward(self, x):
        sys.exit(0)
