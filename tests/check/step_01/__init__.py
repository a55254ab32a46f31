"""Step 01 (LayerNorm forward in NumPy), its checks in one place: `checklist`."""
