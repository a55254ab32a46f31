"""Timing, the bandwidth convention, and the limit every implementation is compared with."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np

# LayerNorm's unavoidable traffic, in (N, D) arrays moved per call: forward reads x and writes y;
# backward reads x and dy and writes dx. gamma, beta, mean and rstd are O(N + D) and ignored.
ARRAYS_MOVED = {"forward": 2, "backward": 3}


@dataclass(frozen=True)
class Budget:
    """How long to measure one (implementation, pass, shape) cell."""

    warmup: int = 2  # calls not timed: first-touch page faults, lazy initialisation, caches
    warmup_seconds: float = 0.2  # ...and at least this long, so thread pools are awake
    min_repeats: int = 5
    max_repeats: int = 30
    seconds: float = 1.5  # stop repeating once this much time has been measured (after min_repeats)


BUDGETS = {
    "full": Budget(),
    "quick": Budget(warmup=1, warmup_seconds=0.1, min_repeats=5, max_repeats=15, seconds=0.6),
    "tiny": Budget(warmup=1, warmup_seconds=0.0, min_repeats=3, max_repeats=3, seconds=0.0),
}


def bytes_moved(shape: tuple[int, int], pass_: str, itemsize: int = 4) -> int:
    n, d = shape
    return ARRAYS_MOVED[pass_] * n * d * itemsize


def gbps(shape: tuple[int, int], pass_: str, median_ms: float, itemsize: int = 4) -> float:
    """Effective bandwidth: the unavoidable bytes divided by the time (GB = 1e9 bytes)."""
    return bytes_moved(shape, pass_, itemsize) / (median_ms * 1e-3) / 1e9


def time_call(function, budget: Budget) -> list[float]:
    """Wall-clock seconds of `function()` per call, after `budget.warmup` untimed calls."""
    started = time.perf_counter()
    calls = 0
    while calls < budget.warmup or time.perf_counter() - started < budget.warmup_seconds:
        function()
        calls += 1
    samples: list[float] = []
    spent = 0.0
    while len(samples) < budget.max_repeats:
        start = time.perf_counter()
        function()
        elapsed = time.perf_counter() - start
        samples.append(elapsed)
        spent += elapsed
        if len(samples) >= budget.min_repeats and spent >= budget.seconds:
            break
    return samples


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


class CopyLimit:
    """The limit: one NumPy copy of an (N, D) float32 array reads N*D*4 bytes and writes as many,
    exactly the forward's unavoidable traffic, so copy bandwidth = 2*N*D*4 / time.

    Measured again just before each implementation, in the same process: on a shared machine the
    bandwidth available drifts, and each row is compared with the copy of its own moment."""

    def __init__(self, budget: Budget):
        self.budget = Budget(
            warmup=1,
            warmup_seconds=0.05,
            min_repeats=max(3, min(budget.min_repeats, 7)),
            max_repeats=max(3, min(budget.max_repeats, 11)),
            seconds=min(budget.seconds, 0.4),
        )
        self.shape = None
        self.source = self.target = None

    def ms(self, shape: tuple[int, int]) -> float:
        if self.shape != shape:  # keep one pair of arrays: allocating them is not part of a copy
            self.source = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            self.target = np.empty_like(self.source)
            self.shape = shape
        return median_ms(time_call(lambda: np.copyto(self.target, self.source), self.budget))

    def release(self) -> None:
        self.shape = self.source = self.target = None


def process_threads() -> dict[str, int]:
    """Names of this process's OS threads, counted (Linux only; empty elsewhere)."""
    counts: dict[str, int] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return counts
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as handle:
                name = handle.read().strip()
        except OSError:
            continue
        counts[name] = counts.get(name, 0) + 1
    return counts


def numpy_threads() -> dict:
    """NumPy's element-wise ops and reductions run on one thread; only BLAS calls use a pool."""
    info = {"elementwise": 1}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
        info["blas_source"] = "threadpoolctl"
    except ImportError:
        info["blas"] = {
            name: os.environ[name]
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if name in os.environ
        }
        info["blas_source"] = "environment (threadpoolctl not installed); unset means one per core"
    return info


def machine() -> dict:
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["load_average"] = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        pass
    return info
