"""The vocabulary of a checklist: a step's checklist imports from this package only.

Judge side (plain data in, verdicts out):
- `Checklist`, `Fail`: declare checks; a `Fail` is the ❌ and its hint (`blocks=` stops later checks;
  `NOT_IMPORTED` is the block of a file that does not import, for checks that run `despite` it);
  `explain`: the hint for an exception the learner's code raised.
- `layernorm`, `layernorm_grads`: the float64 oracles. `random_case`, `upstream_gradient`: inputs.
- `expect_array` (NumPy arrays and torch/MAX tensors alike), `expect_tuple`, `expect_close`,
  `relative_error`, `error_hints`, `judge_large_mean`: validators whose failures say what is wrong;
  `known_mistake`: the name `expect_close` would give a wrong output, or None.
- `forward_mistakes`, `gradient_mistakes`, `parameter_gradient_mistakes`, `Mistake`: the catalogue of classic
  wrong LayerNorms.
- `torch_module`: judging a PyTorch LayerNorm module (step 04): PyTorch's fixes, forward, gradients, state_dict.
- `transformer`: judging step 05's blocks (LayerNorm placement, the residual) and its experiment, and its figure.
Learner side (probes, run in the learner's process through `learner.probe`):
- `numpy_side`, `torch_side`, `max_side`: the adapters and probes of each framework's steps.
"""

from tests.check.engine import NOT_IMPORTED, REPO_ROOT, Checklist, Fail, Learner, explain
from tests.check.kit import (
    max_side,
    numpy_side,
    torch_module,
    torch_side,
    transformer,
)
from tests.check.kit.judging import (
    Mistake,
    error_hints,
    expect_array,
    expect_close,
    expect_tuple,
    judge_large_mean,
    known_mistake,
    layernorm,
    layernorm_grads,
    random_case,
    relative_error,
    representable,
    tolerance,
    type_name,
    upstream_gradient,
)
from tests.check.kit.mistakes import forward_mistakes, gradient_mistakes, parameter_gradient_mistakes
from tests.check.kit.numpy_side import (
    NUMPY_FIXES,
    expect_vectorised,
    forward_diagnosis,
    forward_matches,
    forward_output,
    forward_value,
    line_events,
    numpy_only,
)
from tests.check.sandbox import LearnerError
from tests.check.wire import TensorRecord
