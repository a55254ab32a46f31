"""Step 06 (a LayerNorm kernel in Mojo, as a MAX custom op), its checks in one place: `checklist` (the checks and
their hints), `judging` (where a kernel's output is wrong and why, the compiler's messages), `kernel_harness`
(with `kernel_harness.mojo`: the CPU kernel built and called directly, on guarded buffers, within a time budget)
and `probes` (run in the learner's process: the glue's custom op declared, compiled and timed).
"""
