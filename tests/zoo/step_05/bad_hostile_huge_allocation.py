"""EXPECT: PreLNBlock computes :: GiB of memory

Allocates far more memory than the machine should give a check.
"""

import numpy as np
from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PreLNBlock as _Solution


class PreLNBlock(_Solution):
    def forward(self, x):
        hog = [np.ones(2**27) for _ in range(64)]  # 64 GiB, 1 GiB at a time, each touched
        return super().forward(x) + float(hog[-1][0])
