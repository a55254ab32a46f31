"""Step 04 beyond the shared promises of tests/test_steps.py."""

import pytest

from tests.check.engine import REPO_ROOT
from tests.zoo_helpers import check_file, failures

pytestmark = pytest.mark.slow


def test_builtin_hint_points_at_the_learners_line():
    path = REPO_ROOT / "tests" / "zoo" / "step_04" / "bad_uses_functional.py"
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "F.layer_norm(" in text)
    report = check_file("04", path)
    [result] = [r for r in report.results if r.name.startswith("does not use nn.LayerNorm")]
    assert not result.passed
    assert f"line {line}: `y = F.layer_norm(" in result.message, result.message
    others = [r for r in report.results if r is not result]
    assert all(r.passed for r in others), failures(report)  # the ban is lifted after its check
