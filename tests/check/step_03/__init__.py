"""Step 03 (LayerNorm as a MAX module), its checks in one place: `checklist` (the checks and their hints),
`judging` (the run's dtype and tolerances, the learner's module, forward and compiled graph judged as arrays)
and `probes` (run in the learner's process: their Module built, traced and compiled; MAX is imported there only).
"""
