"""Step 03 (LayerNorm as a MAX module), its checks in one place: `checklist`."""
