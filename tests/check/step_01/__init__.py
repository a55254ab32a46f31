"""Step 01 (LayerNorm forward in NumPy), its checks in one place: `checklist` (the checks, their hints and their
probes; the NumPy judging it shares with step 02 is `tests.check.kit.numpy_side`).
"""
