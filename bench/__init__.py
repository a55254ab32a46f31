"""Benchmarks of the LayerNorm implementations against the memory-bandwidth limit.

`python -m bench.run` (or `make bench`) measures every implementation, writes `bench/results.json`,
`bench/chart.png` and regenerates `docs/src/performance.md`.
"""
