"""The step checker: `python -m tests.check NN [--solution | --file PATH ...] [--json]`.

It runs the learner's code in a separate process, judges the results against float64 oracles,
prints ✅/❌ with a hint for each check, and exits 0 only when every check passed.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the one root every tool of the project resolves paths from
