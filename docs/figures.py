"""Draw the book's figures: `python -m docs.figures [--only NAME ...] [--skip-experiment]` (make figures).

Each figure is computed from the reference solutions or from plain float64 NumPy, drawn with
matplotlib (Agg) and written to docs/src/figures/ as PNG without a timestamp, so rebuilding an
unchanged figure leaves git clean. `pre_post_ln.png` is the step-05 experiment, drawn by the
step's checker (`python -m tests.check 05 --solution --plot PATH`); it runs PyTorch for a few seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.check import REPO_ROOT

FIGURES = REPO_ROOT / "docs" / "src" / "figures"
PNG_METADATA = {"Software": None}  # no matplotlib version stamp: the bytes depend on the data only
BLUE, ORANGE, GREY = "#1f77b4", "#d95f02", "#7f7f7f"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _solution(name: str):
    """A reference solution module, loaded from its file (solutions/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "solutions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save(figure, name: str) -> Path:
    path = FIGURES / name
    figure.savefig(path, dpi=110, metadata=PNG_METADATA)
    return path


# -- introduction: which axis ---------------------------------------------------------------------
def layernorm_vs_batchnorm() -> Path:
    """The same (N, D) batch normalised per row (LayerNorm) and per column (BatchNorm)."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    layernorm_forward = _solution("solution_01").layernorm_forward
    rng = np.random.default_rng(0)
    n, d = 6, 8
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=(n, 1)) + rng.normal(size=(n, 1)) * 3
    x += np.linspace(-2, 2, d)  # features with their own offsets, so the two normalisations differ
    layer, _ = layernorm_forward(x, np.ones(d), np.zeros(d), eps=1e-5)
    batch = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)  # BatchNorm's training-time statistics

    figure, axes = plt.subplots(1, 3, figsize=(9.6, 3.5), constrained_layout=True)
    panels = [
        (x, "input x\n6 tokens × 8 features", None),
        (layer, "LayerNorm: per row, axis=-1\n(one token's features)", "row"),
        (batch, "BatchNorm: per column, axis=0\n(one feature over the batch)", "column"),
    ]
    limit = np.abs(x).max()
    for axis, (values, title, highlight) in zip(axes, panels, strict=True):
        shown = axis.imshow(values / (limit / 2.5 if highlight is None else 1.0), cmap="coolwarm", vmin=-2.5, vmax=2.5)
        axis.set_title(title, fontsize=10, pad=14)
        axis.set_xlabel("feature (D)")
        axis.set_ylabel("token / sample (N)")
        axis.set_xticks(range(d))
        axis.set_yticks(range(n))
        if highlight == "row":
            axis.add_patch(Rectangle((-0.5, 1.5), d, 1, fill=False, lw=2.5, ec="black"))
            axis.text(d - 0.4, 2, f" mean {values[2].mean():+.2f}\n std {values[2].std():.2f}", va="center", fontsize=8)
        elif highlight == "column":
            axis.add_patch(Rectangle((2.5, -0.5), 1, n, fill=False, lw=2.5, ec="black"))
            axis.text(
                3,
                -0.6,
                f"mean {values[:, 3].mean():+.2f}, std {values[:, 3].std():.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    figure.colorbar(shown, ax=list(axes), shrink=0.75, pad=0.02, label="value (input rescaled to this range)")
    path = _save(figure, "layernorm_vs_batchnorm.png")
    plt.close(figure)
    return path


# -- numerics: cancellation and low-precision accumulation ----------------------------------------
def one_pass_layernorm(x, eps=1e-5):
    """The textbook shortcut Var[x] = E[x²] - E[x]², computed in the input's dtype."""
    mean = x.mean(axis=1, keepdims=True)
    var = (x * x).mean(axis=1, keepdims=True) - mean * mean
    return (x - mean) / np.sqrt(np.maximum(var, 0) + eps)


def cancellation_errors(offsets, d=256, rows=64, seed=0):
    """Max error (vs float64) of float32 LayerNorm on rows offset + N(0, 1), two ways."""
    layernorm_forward = _solution("solution_01").layernorm_forward
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(rows, d))
    two_pass, one_pass = [], []
    for offset in offsets:
        x64 = offset + noise
        exact = (x64 - x64.mean(axis=1, keepdims=True)) / np.sqrt(x64.var(axis=1, keepdims=True) + 1e-5)
        x32 = x64.astype(np.float32)
        ones, zeros = np.ones(d, np.float32), np.zeros(d, np.float32)
        two_pass.append(np.abs(layernorm_forward(x32, ones, zeros)[0] - exact).max())
        one_pass.append(np.abs(one_pass_layernorm(x32) - exact).max())
    return np.array(two_pass), np.array(one_pass)


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (8 mantissa bits), returned as float32."""
    bits = np.asarray(values, np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def running_mean_error(lengths, round_to, trials=32, seed=0):
    """Relative error of a row mean summed left to right with every partial sum rounded by `round_to`."""
    rng = np.random.default_rng(seed)
    errors = []
    for d in lengths:
        x = round_to(1.0 + rng.random(size=(trials, d)).astype(np.float32))  # values in [1, 2): mean 1.5
        total = np.zeros(trials, np.float32)
        for column in range(d):
            total = round_to(total + x[:, column])
        exact = x.astype(np.float64).mean(axis=1)
        errors.append(np.max(np.abs(total / d - exact) / exact))
    return np.array(errors)


def numerics() -> list[Path]:
    plt = _pyplot()
    offsets = np.array([1e0, 1e1, 1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5])
    two_pass, one_pass = cancellation_errors(offsets)
    figure, axis = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    axis.loglog(offsets, one_pass, "o-", color=ORANGE, label="E[x²] − E[x]²  (one pass)")
    axis.loglog(offsets, two_pass, "s-", color=BLUE, label="mean((x − mean)²)  (solution_01)")
    axis.axhline(1.0, color=GREY, lw=0.8, ls="--")
    axis.text(offsets[0], 1.15, "error as large as the output itself", color=GREY, fontsize=8)
    axis.set_xlabel("row mean (rows are mean + N(0, 1), D = 256, float32)")
    axis.set_ylabel("max |y − y_float64|")
    axis.set_title("Cancellation: the variance from E[x²] − E[x]² in float32")
    axis.legend(frameon=False)
    paths = [_save(figure, "cancellation.png")]
    plt.close(figure)

    lengths = np.array([16, 64, 256, 1024, 4096])
    float16 = running_mean_error(lengths, lambda a: np.asarray(a, np.float16).astype(np.float32))
    bfloat16 = running_mean_error(lengths, to_bfloat16)
    float32 = running_mean_error(lengths, lambda a: np.asarray(a, np.float32))
    figure, axis = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    axis.loglog(lengths, bfloat16, "o-", color=ORANGE, label="bfloat16 accumulator")
    axis.loglog(lengths, float16, "^-", color="#7570b3", label="float16 accumulator")
    axis.loglog(lengths, np.maximum(float32, 1e-9), "s-", color=BLUE, label="float32 accumulator")
    axis.set_xlabel("D (values summed; each in [1, 2))")
    axis.set_ylabel("relative error of the mean")
    axis.set_title("Summing a row in low precision: accumulate in float32")
    axis.legend(frameon=False)
    paths.append(_save(figure, "accumulation.png"))
    plt.close(figure)
    return paths


# -- step 05: drawn by the step's checker ----------------------------------------------------------
def pre_post_ln() -> Path:
    path = FIGURES / "pre_post_ln.png"
    command = [sys.executable, "-m", "tests.check", "05", "--solution", "--plot", str(path)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0 or not path.exists():
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"error: {' '.join(command[1:])} failed (exit {result.returncode})")
    return path


FIGURE_MAKERS = {
    "layernorm_vs_batchnorm": layernorm_vs_batchnorm,
    "numerics": numerics,
    "pre_post_ln": pre_post_ln,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURE_MAKERS), help="draw only these figures")
    parser.add_argument("--skip-experiment", action="store_true", help="do not run the step-05 experiment")
    options = parser.parse_args(argv)
    FIGURES.mkdir(parents=True, exist_ok=True)
    names = options.only or [name for name in FIGURE_MAKERS if not (options.skip_experiment and name == "pre_post_ln")]
    for name in names:
        made = FIGURE_MAKERS[name]()
        for path in made if isinstance(made, list) else [made]:
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
