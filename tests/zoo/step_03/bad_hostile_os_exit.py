"""EXPECT: F.layer_norm is used (forward :: The process exited (code 0)

Calls os._exit(0) inside a method: the process ends without a reply.
"""

import os
from solutions.solution_03 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_03 import LayerNorm as _Solution


class LayerNorm(_Solution):
    def forward(self, x):
        os._exit(0)
