"""Run step 06's GPU kernel from its PTX with CuPy: judge it against float64, time it against PyTorch and a copy.

    python -m bench.gpu_smoke                make gpu-smoke: the bench shapes and 4096x8192
    python -m bench.gpu_smoke --quick        two shapes, fewer repeats
    python -m bench.gpu_smoke --render-only  rebuild bench/numbers-gpu.md from bench/results-gpu.json

For a GPU machine without MAX or Mojo: it needs NumPy and CuPy (PyTorch for its comparison), and the PTX
that `make gpu-ptx` builds where Mojo is (bench/gpu/build/, copied along). The kernel is the one the
custom op launches (bench/gpu/harness.mojo imports it), launched the same way: one block of GPU_BLOCK
threads per row. Each shape is judged against a float64 NumPy LayerNorm; the times are CUDA-event
medians, beside torch.nn.functional.layer_norm and a device-to-device copy of the same array (the
bandwidth ceiling). Results: bench/results-gpu.json, with the device's name, and bench/numbers-gpu.md,
which the book's performance page includes.

Without CuPy or a GPU it says why and exits 0, measuring nothing and writing nothing: no GPU number is
ever written that a GPU did not measure.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from tests.check import REPO_ROOT

BUILD = REPO_ROOT / "bench" / "gpu" / "build"
KERNEL_SOURCE = REPO_ROOT / "solutions" / "solution_06" / "layer_norm.mojo"
RESULTS = REPO_ROOT / "bench" / "results-gpu.json"
NUMBERS = REPO_ROOT / "bench" / "numbers-gpu.md"
# bench/run.py's full shapes (a test keeps them equal), and one wide row: 8192 floats span several sweeps
SHAPES = {"full": [(4096, 768), (8192, 1024), (16384, 4096), (4096, 8192)], "quick": [(4096, 768), (4096, 8192)]}
EPS = 1e-5
REPEATS = {"full": 50, "quick": 10}
WARMUP = 5
ATOL = 1e-4  # as the checker's GPU checks: float32 against float64, widened for long rows as the kit's tolerance


# -- the CPU side: inputs, the float64 reference, the verdict -----------------------------------------
def inputs(shape, seed: int = 0):
    """(x, gamma, beta) float32: rows with their own offset and spread, gamma of both signs, beta non-zero."""
    n, d = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=(n, 1)) + rng.normal(size=(n, 1)) * 2
    gamma = rng.uniform(0.5, 2.0, size=d) * rng.choice([-1.0, 1.0], size=d)
    return x.astype(np.float32), gamma.astype(np.float32), rng.normal(size=d).astype(np.float32)


def reference(x, gamma, beta, eps: float = EPS) -> np.ndarray:
    """LayerNorm over the last axis in float64: the biased variance, eps inside the square root."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    rstd = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    return centred * rstd * np.asarray(gamma, np.float64) + np.asarray(beta, np.float64)


def tolerance(width: int) -> float:
    return ATOL * max(1.0, float(np.sqrt(width / 1024)))


def judge(y, x, gamma, beta, eps: float = EPS) -> dict:
    """The verdict on one output: max error against float64, the tolerance, and whether it is within it."""
    y = np.asarray(y)
    if y.shape != np.shape(x):
        return {"passed": False, "max_error": None, "tolerance": None, "why": f"shape {y.shape}, expected {x.shape}"}
    error = np.abs(y.astype(np.float64) - reference(x, gamma, beta, eps))
    worst = float(np.max(error)) if np.all(np.isfinite(y)) else float("inf")
    limit = tolerance(np.shape(x)[-1])
    verdict = {"passed": worst <= limit, "max_error": worst, "tolerance": limit}
    if not verdict["passed"]:
        where = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(error), error, np.inf))), error.shape)
        verdict["why"] = f"max error {worst:.3g} at {tuple(int(i) for i in where)}, tolerance {limit:.0e}"
    return verdict


def gbps(shape, seconds: float | None) -> float | None:
    """The unavoidable bytes of a forward pass (x read, y written) per second, as bench/run.py counts them."""
    n, d = shape
    return None if not seconds else 2 * n * d * 4 / seconds / 1e9


# -- the GPU side ---------------------------------------------------------------------------------------
def unavailable() -> str | None:
    """Why this machine cannot run the smoke test (no CuPy, no CUDA GPU), or None."""
    try:
        import cupy
    except ImportError as error:
        return f"CuPy is not installed ({error}); on a CUDA machine: pip install cupy-cuda12x"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDA errors when no driver or device answers
        return f"CuPy finds no CUDA GPU ({type(error).__name__}: {error})"
    return None if count else "CuPy finds no CUDA GPU"


def load_kernel(arch: str, build: Path):
    """The kernel from build/layer_norm_ARCH.ptx, and its manifest; or SystemExit saying how to build it."""
    import cupy

    manifest_path = build / f"layer_norm_{arch}.json"
    if not manifest_path.exists():
        raise SystemExit(
            f"No PTX for this GPU ({arch}) in {build}: build it where Mojo is installed, with "
            f'make gpu-ptx ARGS="--arch {arch}", and copy bench/gpu/build/ here.'
        )
    manifest = json.loads(manifest_path.read_text())
    try:
        module = cupy.RawModule(path=str(build / manifest["file"]))
        return module.get_function(manifest["entry"]), manifest
    except Exception as error:  # the driver's JIT refuses PTX newer than itself, or for another GPU
        raise SystemExit(f"CUDA could not load {manifest['file']} ({type(error).__name__}: {error}).") from None


def timed(run, repeats: int, events) -> dict:
    """Median and best seconds of `run()` between CUDA events, after warm-up calls.

    `events()` gives (start, end, milliseconds between them): CuPy's or PyTorch's, each on its own stream.
    """
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(repeats):
        start, end, elapsed_ms = events()
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(elapsed_ms(start, end) / 1e3)
    return {"median": float(np.median(times)), "best": float(np.min(times))}


def measure(shapes, repeats: int, build: Path) -> dict:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    arch = f"sm_{cupy.cuda.Device(0).compute_capability}"
    kernel, manifest = load_kernel(arch, build)
    current = hashlib.sha256(KERNEL_SOURCE.read_bytes()).hexdigest() if KERNEL_SOURCE.exists() else None
    try:
        import torch

        torch_version = torch.__version__ if torch.cuda.is_available() else None
    except ImportError:
        torch, torch_version = None, None

    def cupy_events():
        return cupy.cuda.Event(), cupy.cuda.Event(), cupy.cuda.get_elapsed_time

    def torch_events():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        return start, end, lambda a, b: a.elapsed_time(b)

    rows = []
    for seed, (n, d) in enumerate(shapes):
        x, gamma, beta = inputs((n, d), seed)
        x_gpu, g_gpu, b_gpu = (cupy.asarray(a) for a in (x, gamma, beta))
        y_gpu, copy_gpu = cupy.empty_like(x_gpu), cupy.empty_like(x_gpu)
        grid = min(n, manifest["max_grid"])
        args = (y_gpu, x_gpu, g_gpu, b_gpu, np.int64(n), np.int64(d), np.float32(EPS))

        def ours(grid=grid, args=args):
            kernel((grid,), (manifest["block"],), args)

        ours()
        cupy.cuda.Device(0).synchronize()
        row = {"shape": [n, d], **judge(cupy.asnumpy(y_gpu), x, gamma, beta)}
        seconds = {"ours": timed(ours, repeats, cupy_events)}
        seconds["copy"] = timed(lambda c=copy_gpu, s=x_gpu: cupy.copyto(c, s), repeats, cupy_events)
        if torch_version:
            xt, gt, bt = (torch.from_dlpack(a) for a in (x_gpu, g_gpu, b_gpu))
            seconds["torch"] = timed(
                lambda xt=xt, gt=gt, bt=bt, d=d: torch.nn.functional.layer_norm(xt, (d,), gt, bt, EPS),
                repeats,
                torch_events,
            )
        row["ms"] = {name: s["median"] * 1e3 for name, s in seconds.items()}
        row["best_ms"] = {name: s["best"] * 1e3 for name, s in seconds.items()}
        row["gbps"] = {name: gbps((n, d), s["median"]) for name, s in seconds.items()}
        row["of_copy"] = seconds["copy"]["median"] / seconds["ours"]["median"]
        row["x_torch"] = seconds["ours"]["median"] / seconds["torch"]["median"] if torch_version else None
        rows.append(row)
        print(line(row), flush=True)
        del x_gpu, y_gpu, copy_gpu
        cupy.get_default_memory_pool().free_all_blocks()
    return {
        "device": props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
        "arch": arch,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cupy": cupy.__version__,
        "torch": torch_version,
        "repeats": repeats,
        "kernel": {**manifest, "stale": current is not None and current != manifest.get("source_sha256")},
        "rows": rows,
    }


# -- the report -----------------------------------------------------------------------------------------
def line(row: dict) -> str:
    n, d = row["shape"]
    verdict = "ok" if row["passed"] else f"WRONG ({row.get('why', '')})"
    torch_part = f", torch {row['ms']['torch']:.3f} ms" if "torch" in row["ms"] else ""
    return (
        f"{n}x{d}: {verdict}; ours {row['ms']['ours']:.3f} ms{torch_part}, copy {row['ms']['copy']:.3f} ms "
        f"({row['of_copy']:.0%} of the copy's bandwidth)"
    )


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


HEADER = "<!-- Generated by `make gpu-smoke` (bench/gpu_smoke.py) from bench/results-gpu.json; do not edit. -->"


def render(results: dict | None) -> str:
    """bench/numbers-gpu.md: the measured table, or, until a GPU has run the kernel, the statement that none has."""
    if results is None:
        return (
            f"{HEADER}\n\n**Not run on a GPU yet.** The GPU kernel of step 06 is compiled for NVIDIA (sm_90) and AMD "
            "(gfx942) GPUs by the project's tests, on machines without a GPU; no GPU has run it for this page, so "
            "there are no GPU numbers here. On a machine with an NVIDIA GPU, CuPy and PyTorch, `make gpu-smoke` "
            "(with the PTX from `make gpu-ptx`, built where Mojo is installed) measures it and writes this "
            "section.\n"
        )
    kernel = results["kernel"]
    lines = [
        HEADER,
        "",
        f"Measured on **{results['device']}** ({results['arch']}) on {results['date']}: CuPy {results['cupy']}, "
        f"PyTorch {results['torch'] or 'not available'}, median of {results['repeats']} calls timed with CUDA "
        f"events. Kernel: `{kernel['entry']}` from {kernel['source']}, {kernel['block']} threads per row, "
        f"built by {kernel.get('compiler') or 'Mojo'}.",
    ]
    if kernel.get("stale"):
        lines.append("\n⚠️ The PTX was built from an older layer_norm.mojo than the one in this repository.")
    lines += [
        "",
        "| shape | verdict | max error | median ms | torch ms | copy ms | GB/s | of copy | × torch |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in results["rows"]:
        n, d = row["shape"]
        verdict = "✅" if row["passed"] else "❌ wrong: its time means nothing"
        cells = [
            f"{n}×{d}",
            verdict,
            fmt(row["max_error"], ".1e"),
            fmt(row["ms"]["ours"], ".3f"),
            fmt(row["ms"].get("torch"), ".3f"),
            fmt(row["ms"]["copy"], ".3f"),
            fmt(row["gbps"]["ours"], ".0f"),
            fmt(row["of_copy"], ".0%"),
            fmt(row["x_torch"], ".2f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, ten calls each")
    parser.add_argument("--render-only", action="store_true", help="measure nothing: rebuild numbers-gpu.md")
    parser.add_argument("--build", type=Path, default=BUILD, help="where the PTX is (default: bench/gpu/build/)")
    parser.add_argument("--out", type=Path, help="write results-gpu.json and numbers-gpu.md here instead of bench/")
    args = parser.parse_args(argv)
    results_path, numbers_path = (args.out / p.name for p in (RESULTS, NUMBERS)) if args.out else (RESULTS, NUMBERS)
    if args.render_only:
        results = json.loads(results_path.read_text()) if results_path.exists() else None
        numbers_path.write_text(render(results), encoding="utf-8")
        return 0
    why = unavailable()
    if why:
        print(f"GPU smoke run skipped: {why}. Nothing was measured and nothing written.")
        return 0
    mode = "quick" if args.quick else "full"
    results = measure(SHAPES[mode], REPEATS[mode], args.build)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    numbers_path.write_text(render(results), encoding="utf-8")
    print(f"Wrote {results_path} and {numbers_path}.")
    return 0 if all(row["passed"] for row in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
