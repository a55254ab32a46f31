"""Step 02 (LayerNorm backward in NumPy), its checks in one place: `checklist`, and `judging`, which
judges a hand-written backward and names what it gets wrong, term by term."""
