"""EXPECT: PreLNBlock computes :: The process exited (code 0)

Calls os._exit(0) inside a method: the process ends without a reply.
"""

import os
from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PreLNBlock as _Solution


class PreLNBlock(_Solution):
    def forward(self, x):
        os._exit(0)
