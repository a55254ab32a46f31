"""Step 04 (LayerNorm as a PyTorch nn.Module), its checks in one place: `checklist`."""
