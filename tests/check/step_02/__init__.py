"""Step 02 (LayerNorm backward in NumPy), its checks in one place: `checklist` (the checks and their hints) and
`judging` (a hand-written backward judged, and what it gets wrong named term by term).
"""
