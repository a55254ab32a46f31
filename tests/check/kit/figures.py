"""Figures the checker draws from a learner's numbers (judge side; matplotlib only, no learner code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
