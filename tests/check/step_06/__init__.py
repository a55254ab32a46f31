"""Step 06 (a LayerNorm kernel in Mojo, as a MAX custom op), its checks in one place: `checklist`."""
