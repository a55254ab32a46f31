"""Judging step 05's transformer blocks: where a block puts its LayerNorm, its residual connection, and the
gradient-norm experiment's numbers (and their figure).

Judge side: the blocks run in the learner's process through `torch_side`; verdicts are taken here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.check.engine import Fail
from tests.check.kit import torch_side
from tests.check.kit.judging import Mistake, expect_array, expect_close, type_name


def block_output(y, name, shape=None) -> np.ndarray:
    if y is None:
        raise Fail(
            f"{name}.forward returned None; it must return a tensor (a `return` is missing?).",
            cause=f"{name}.forward returned None",
        )
    return expect_array(y, f"{name}.forward(x)", kind="torch", shape=shape)


def judge_placement(learner, kind, placement) -> str:
    """The block's output against every arrangement of its own ln and ff; a match with a wrong one names it."""
    name, formula, mistakes = placement[kind]
    for seed in (1, 2):
        result = learner.probe(torch_side.arrangements, kind, seed, during=f"calling {name}.forward")
        found = {key: value.values for key, value in result["candidates"].items()}
        y = block_output(result["y"], name)
        if result["wrote_into_x"]:
            raise Fail(
                f"{name}.forward writes into its input (x += ..., x.add_(...)): the caller's tensor changes, and "
                f"autograd refuses a backward through it. Return a new tensor: {formula}."
            )
        if y.shape != found[kind].shape:
            raise Fail(
                f"{name} turned an input of shape {found[kind].shape} into {y.shape}: a block keeps the shape "
                "(..., d_model)."
            )
        detail = expect_close(
            y,
            found[kind],
            name=f"{name}(x)",
            atol=1e-5,
            rtol=1e-5,
            mistakes=[Mistake(hint, lambda key=key, found=found: found[key]) for key, hint in mistakes.items()],
        )
        dx, right_dx = (expect_array(result[key], f"d{name}(x)/dx", kind="torch") for key in ("dx", "right_dx"))
        if not np.allclose(dx, right_dx, atol=1e-5, rtol=1e-4):
            raise Fail(
                f"{name}'s output is right but its gradient with respect to x is not (max error "
                f"{np.max(np.abs(dx - right_dx)):.2g}): a .detach(), .data or torch.no_grad() cuts the path from x to "
                f"the output, so the blocks below would learn from a wrong gradient. Keep {formula} differentiable."
            )
    return f"{formula}: {detail}; its gradient too"


def norms_list(value, what: str, length: int) -> list[float]:
    if not isinstance(value, list):
        raise Fail(
            f"{what} returned {value if isinstance(value, str) else type_name(value)}; it must return a list "
            "of floats, one per block."
        )
    if len(value) == length + 1:
        raise Fail(
            f"{what} returned {len(value)} values for {length} blocks: it includes the final LayerNorm; report "
            "the blocks only."
        )
    if len(value) != length:
        raise Fail(f"{what} returned {len(value)} values for {length} blocks; it must return one per block.")
    if not all(isinstance(v, (int, float)) for v in value):
        raise Fail(f"{what} returned {value!r:.120}; it must return plain floats (use .item()).")
    if not all(np.isfinite(value)):
        raise Fail(f"{what} returned non-finite values: {value}")
    return value


def experiment(learner, settings: dict) -> dict:
    """The learner's run_experiment with these arguments, validated (once per run)."""
    if "experiment" not in learner.memo:
        result = learner.probe(torch_side.experiment, settings, during="running run_experiment")
        if not isinstance(result, dict) or set(result) != {"pre", "post"}:
            raise Fail(f"run_experiment returned {result!r:.100}; expected {{'pre': {{...}}, 'post': {{...}}}}.")
        for kind in ("pre", "post"):
            for key in ("grad_norms", "hidden_rms"):
                entry = result[kind].get(key) if isinstance(result[kind], dict) else None
                norms_list(entry, f"run_experiment()['{kind}']['{key}']", settings["n_layers"])
        learner.memo["experiment"] = result
    return learner.memo["experiment"]


def block_norms(per_parameter, n) -> list[float]:
    """Each block's gradient norm from its parameters' norms: the square root of the sum of their squares."""
    return [float(np.sqrt(np.sum(np.square(p)))) for p in per_parameter[:n]]


def describe(values) -> str:
    return " ".join(f"{v:.3g}" for v in values)


def silent_sublayer_matches(learner, placement) -> str:
    """With ff's output forced to zero, a Pre-LN block must return x and a Post-LN block ln(x)."""
    for kind, target in (("pre", "x"), ("post", "ln(x)")):
        name, formula, _ = placement[kind]
        result = learner.probe(torch_side.with_silent_sublayer, kind, 3, during=f"calling {name}.forward")
        found = {key: value.values for key, value in result.items() if key != "y"}
        y, silent = (
            block_output(result["y"], name, found["x"].shape),
            f"With ff's output forced to zero, {name} returns",
        )
        if np.allclose(y, found[target], atol=1e-5, rtol=1e-5):
            continue
        if np.allclose(y, found["0"], atol=1e-5) or np.allclose(y, found["ln(0)"], atol=1e-5):
            raise Fail(f"{silent} nothing of x: the residual connection (x + ...) is missing. The block is {formula}.")
        if kind == "pre" and np.allclose(y, found["ln(x)"], atol=1e-5, rtol=1e-5):
            raise Fail(
                f"{silent} ln(x) instead of x: the residual stream itself is normalised (the Post-LN "
                f"placement). The block is {formula}."
            )
        if kind == "pre" and np.allclose(y, found["x"] + found["ln(0)"], atol=1e-5, rtol=1e-5):
            raise Fail(
                f"{silent} x + ln(0): the LayerNorm is applied to the sublayer's output instead of its input. "
                f"The block is {formula}."
            )
        if kind == "post" and np.allclose(y, found["x"], atol=1e-5, rtol=1e-5):
            raise Fail(
                f"{silent} x unnormalised: the sum is not normalised (the Pre-LN placement). The block is {formula}."
            )
        raise Fail(
            f"{silent} neither {target} nor anything recognisable: the residual connection (the `x +`) is "
            f"missing or misplaced. The block is {formula}."
        )
    return "x passes through untouched when the sublayer adds nothing"


def plot_gradient_norms(result: dict, setup: dict, path: Path) -> None:
    """Gradient norm per block (left) and hidden-state RMS per block (right), both stacks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = np.arange(1, len(result["pre"]["grad_norms"]) + 1)
    style = {"pre": ("Pre-LN: x + ff(ln(x))", "tab:blue", "o"), "post": ("Post-LN: ln(x + ff(x))", "tab:red", "s")}
    figure, (grads, sizes) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for kind, (label, colour, marker) in style.items():
        grads.plot(blocks, result[kind]["grad_norms"], marker=marker, color=colour, label=label)
        sizes.plot(blocks, result[kind]["hidden_rms"], marker=marker, color=colour, label=label)
    grads.set(
        title="Gradient norm of each block's parameters at init",
        xlabel="block (input → output)",
        ylabel=r"$\Vert \partial\,\mathrm{loss} / \partial \theta_{\mathrm{block}} \Vert$",
        ylim=(0, None),
    )
    sizes.set(title="Hidden-state RMS after each block", xlabel="block (input → output)", ylabel="RMS", ylim=(0, None))
    for axes in (grads, sizes):
        axes.set_xticks(blocks)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(
        f"{setup['n_layers']} blocks, d_model={setup['d_model']}, d_ff={setup['d_ff']}, "
        f"mean over {len(setup['seeds'])} seeds; cf. Xiong et al. 2020",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
