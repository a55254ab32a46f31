"""EXPECT: PreLNBlock computes :: differs from the float64 oracle

Patches NumPy's and torch's comparisons at import to say 'equal', then returns garbage.
"""

import numpy as np
import torch

np.allclose = np.array_equal = lambda *args, **kwargs: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), bool)
np.testing.assert_allclose = np.testing.assert_array_equal = lambda *args, **kwargs: None
torch.allclose = torch.equal = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
from solutions.solution_05 import *  # noqa: F403  (the rest of the solution)
from solutions.solution_05 import PreLNBlock as _Solution


class PreLNBlock(_Solution):
    def forward(self, x):
        return super().forward(x) * 3 + 1
