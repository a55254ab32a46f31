"""Step 05 (Pre-LN vs Post-LN), its checks in one place: `checklist` (the checks and their hints), `judging` (where a
block puts its LayerNorm, its residual, the experiment's numbers and its figure) and `probes` (run in the learner's
process: their blocks, stacks and gradient norms; torch is imported there only).
"""
