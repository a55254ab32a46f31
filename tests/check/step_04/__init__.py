"""Step 04 (LayerNorm as a PyTorch nn.Module), its checks in one place: `checklist` (the checks and their hints),
`judging` (PyTorch's fixes for the classic mistakes; the forward, gradients and state_dict judged as arrays) and
`probes` (run in the learner's process: their LayerNorm built, called and inspected; torch is imported there only).
"""
