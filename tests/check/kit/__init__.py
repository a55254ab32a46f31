"""The vocabulary of the checklists: what two or more steps use. What one step alone uses (its judging, its
probes) lives in that step's package, tests/check/step_NN/, which imports from here and from no other step.

Judge side (plain data in, verdicts out):
- `Checklist`, `Fail`: declare checks; a `Fail` is the ❌ and its hint (`blocks=` stops later checks;
  `NOT_IMPORTED` is the block of a file that does not import, for checks that run `despite` it);
  `explain`: the hint for an exception the learner's code raised.
- `layernorm`, `layernorm_grads`: the float64 oracles. `random_case`, `upstream_gradient`: inputs.
- `expect_array` (NumPy arrays and torch/MAX tensors alike), `expect_tuple`, `expect_close`,
  `relative_error`, `error_hints`, `judge_large_mean`: validators whose failures say what is wrong;
  `known_mistake`: the name `expect_close` would give a wrong output, or None.
- `forward_mistakes`, `gradient_mistakes`, `parameter_gradient_mistakes`, `Mistake`: the catalogue of classic
  wrong LayerNorms; a step's fixes for them are keyed by `MistakeKey` (`NO_FIX` where the hint says it all).
- `numpy_side` (steps 01 and 02): the fixes in NumPy's words, a NumPy forward judged, the "NumPy only" and
  "no loop over rows" rules.
Learner side (run in the learner's process, by a step's probes or through `learner.probe`):
- `max_side` (03 and 06): MAX made ready, and the device, tensor and dtype adapters; `torch_side` (04 and 05):
  torch on one thread. A step's own probes import their framework through these.
"""

from tests.check.engine import NOT_IMPORTED, REPO_ROOT, Checklist, Fail, Learner, explain
from tests.check.kit import (
    max_side,
    numpy_side,
    torch_side,
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
from tests.check.kit.mistakes import (
    NO_FIX,
    MistakeKey,
    forward_mistakes,
    gradient_mistakes,
    parameter_gradient_mistakes,
)
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
