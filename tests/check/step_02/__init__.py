"""Step 02 (LayerNorm backward in NumPy), its checks in one place: `checklist`."""
