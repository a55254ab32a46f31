"""EXPECT: F.layer_norm is used (forward :: GiB of memory

Allocates far more memory than the machine should give a check.
"""

import numpy as np
from solutions.solution_03 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_03 import LayerNorm as _Solution


class LayerNorm(_Solution):
    def forward(self, x):
        hog = [np.ones(2**27) for _ in range(64)]  # 64 GiB, 1 GiB at a time, each touched
        return super().forward(x) + float(hog[-1][0])
