"""The step checker: `python -m tests.check NN [--solution | --file PATH ...] [--json]`.

It runs the learner's code in a separate process, judges the results against float64 oracles,
prints ✅/❌ with a hint for each check, and exits 0 only when every check passed.
"""
