"""Judging step 05's transformer blocks: where a block puts its LayerNorm, its residual connection, and the
gradient-norm experiment's numbers (and their figure).

Judge side: the blocks run in the learner's process through `probes`; verdicts are taken here.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests.check.engine import Fail, explain, root_cause
from tests.check.kit.judging import Mistake, expect_array, expect_close, type_name
from tests.check.sandbox import LearnerError, LearnerOverLimit
from tests.check.step_05 import probes


def block_output(y, name, shape=None) -> np.ndarray:
    if y is None:
        raise Fail(
            f"{name}.forward returned None; it must return a tensor (a `return` is missing?).",
            cause=f"{name}.forward returned None",
        )
    return expect_array(y, f"{name}.forward(x)", kind="torch", shape=shape)


IN_PLACE = (
    "{name}.forward writes into its input (x += ..., x.add_(...)): the caller's tensor changes, and autograd refuses "
    "a backward through it. Return a new tensor: {formula}"
)
# autograd's words for a tensor changed in place after it was saved for the backward
AUTOGRAD_IN_PLACE = "modified by an inplace operation"
BLOCK_IN_PLACE = (
    "A block writes into its input (x += ..., x.add_(...)), so autograd cannot run the backward through it (see the "
    "block checks above): return a new tensor, x + ..., instead of adding into x"
)
IN_PLACE_CAUSE = "a block writes into its input"  # one cause wherever it shows: the report tells it once


@contextmanager
def in_place_named():
    """autograd's error for a tensor written in place after it was saved, as the hint that names the block's write."""
    try:
        yield
    except LearnerError as error:
        if AUTOGRAD_IN_PLACE not in str(error):
            raise
        where = f" (line {error.where[0]}: `{error.where[1]}`)" if error.where else ""
        raise Fail(f"{BLOCK_IN_PLACE}{where}.", cause=IN_PLACE_CAUSE) from None


LAYERNORM_NOT_LN = (
    "The LayerNorm applied is not the block's own self.ln (a new nn.LayerNorm made in forward, or F.layer_norm without "
    "its weight and bias): self.ln's weight and bias must be the ones trained. Use self.ln: {formula}"
)


def judge_placement(learner, kind, placement) -> str:
    """The block's output against every arrangement of its own ln and ff; a match with a wrong one names it."""
    name, formula, mistakes = placement[kind]
    mistakes = {
        **mistakes,
        ("x + ff(plain(x))" if kind == "pre" else "plain(x + ff(x))"): LAYERNORM_NOT_LN.format(formula=formula),
    }
    for seed in (1, 2):
        with in_place_named():
            result = learner.probe(probes.arrangements, kind, seed, during=f"calling {name}.forward")
        found = {key: value.values for key, value in result["candidates"].items()}
        y = block_output(result["y"], name)
        before, after = (expect_array(result[key], "x", kind="torch") for key in ("x", "x_after"))
        if before.shape != after.shape or not np.array_equal(before, after):
            raise Fail(IN_PLACE.format(name=name, formula=formula) + ".", cause=IN_PLACE_CAUSE)
        if y.shape != found[kind].shape:
            raise Fail(
                f"{name} turned an input of shape {found[kind].shape} into {y.shape}: a block keeps the shape "
                "(..., d_model)."
            )
        again = block_output(result["again"], name, y.shape)
        if not np.array_equal(y, again):
            raise Fail(
                f"{name} gives two different outputs for the same input (max difference "
                f"{np.max(np.abs(y - again)):.2g}): its forward is random (dropout?). The blocks are deterministic, "
                f"{formula}, so that the experiment measures the architecture at initialisation."
            )
        try:
            detail = expect_close(
                y,
                found[kind],
                name=f"{name}(x)",
                atol=1e-5,
                rtol=1e-5,
                mistakes=[Mistake(hint, lambda key=key, found=found: found[key]) for key, hint in mistakes.items()],
            )
        except Fail as failure:
            scaled = kind == "pre" and "differs from the float64 oracle" in str(failure) and scaled_terms(y, found)
            raise Fail(scaled or str(failure)) from None
        if "dx_error" in result:  # autograd refused a backward the block's output needs: not an in-place write of x
            raise Fail(f"{name}'s output is right, but no gradient flows back through it: {result['dx_error'][:200]}")
        dx, right_dx = (expect_array(result[key], f"d{name}(x)/dx", kind="torch") for key in ("dx", "right_dx"))
        if not np.allclose(dx, right_dx, atol=1e-5, rtol=1e-4):
            raise Fail(
                f"{name}'s output is right but its gradient with respect to x is not (max error "
                f"{np.max(np.abs(dx - right_dx)):.2g}): a .detach(), .data or torch.no_grad() cuts the path from x to "
                f"the output, so the blocks below would learn from a wrong gradient. Keep {formula} differentiable."
            )
    return f"{formula}: {detail}; its gradient too"


def scaled_terms(y, found) -> str | None:
    """The hint for a Pre-LN output that is a·x + b·ff(ln(x)) with other weights than 1 and 1 (a scaled residual or
    sublayer), or None."""
    sublayer = found["ff(ln(x))"]
    x = found["pre"] - sublayer  # the candidates are built from x; x itself is the right block minus its sublayer
    terms = np.stack([x.reshape(-1), sublayer.reshape(-1)], axis=1)
    (a, b), *_ = np.linalg.lstsq(terms, y.reshape(-1), rcond=None)
    if np.max(np.abs(terms @ np.array([a, b]) - y.reshape(-1))) > 1e-4 * (1 + np.max(np.abs(y))):
        return None
    if np.isclose(a, b, rtol=1e-3) and not np.isclose(a, 1, rtol=1e-3):
        return f"PreLNBlock's output is {a:.3g} times x + ff(ln(x)): the block returns x + ff(ln(x)) itself, unscaled."
    scaled = [f"the residual x is scaled by {a:.3g}"] if not np.isclose(a, 1, rtol=1e-3) else []
    scaled += [f"the sublayer's output is scaled by {b:.3g}"] if not np.isclose(b, 1, rtol=1e-3) else []
    return (
        f"PreLNBlock computes {a:.3g}·x + {b:.3g}·ff(ln(x)): {' and '.join(scaled)}. The block adds the two as they "
        "are: x + ff(ln(x))."
        if scaled
        else None
    )


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


def foundation(reason: str):
    """A check the experiment builds on: its failure blocks the checks that do not list `reason` in `despite`, which
    are reported "Not run: <reason>", never judged on wrong inputs. A failure whose cause an earlier foundation already
    reported (one TODO line, say) is grouped under that foundation's reason, so the cause is told once."""

    def decorate(check):
        @functools.wraps(check)
        def run(learner):
            try:
                return check(learner)
            except LearnerOverLimit:  # the engine stops every later check for it
                raise
            except (Fail, LearnerError) as failure:
                if isinstance(failure, Fail) and failure.blocks:
                    raise
                if isinstance(failure, Fail):
                    message, cause = str(failure), failure.cause
                else:
                    message, cause = explain(failure, learner.path), root_cause(failure)
                known = learner.memo.setdefault("foundation causes", {})
                raise Fail(message, blocks=known.setdefault(cause, reason) if cause else reason) from None

        return run

    return decorate


def experiment(learner, settings: dict) -> dict:
    """The learner's run_experiment with these arguments, validated (once per run)."""
    if "experiment" not in learner.memo:
        with in_place_named():
            result = learner.probe(probes.experiment, settings, during="running run_experiment")
        if not isinstance(result, dict) or set(result) != {"pre", "post"}:
            raise Fail(f"run_experiment returned {result!r:.100}; expected {{'pre': {{...}}, 'post': {{...}}}}.")
        for kind in ("pre", "post"):
            for key in ("grad_norms", "hidden_rms"):
                entry = result[kind].get(key) if isinstance(result[kind], dict) else None
                norms_list(entry, f"run_experiment()['{kind}']['{key}']", settings["n_layers"])
        learner.memo["experiment"] = result
    return learner.memo["experiment"]


def _global(parameters) -> float:
    """A block's gradient norm: the square root of the sum of every squared entry of every parameter."""
    return float(np.sqrt(sum(p["l2"] ** 2 for p in parameters)))


def gradient_norm_variants(report: dict, n: int) -> tuple[list[float], dict[str, list[float]]]:
    """The right per-block norms from `probes.gradient_report`'s per-parameter sizes, and the wrong ones learners
    compute instead (another norm, other parameters, another loss, the parameters' own values), by key."""
    blocks = report["grads:mean"][:n]

    def each(combine, blocks=blocks, keep=lambda p: True) -> list[float]:
        return [float(combine([p for p in block if keep(p)])) for block in blocks]

    expected = each(_global)
    variants = {
        "sum-of-norms": each(lambda ps: sum(p["l2"] for p in ps)),
        "squared": [e * e for e in expected],
        "weights-only": each(_global, keep=lambda p: p["role"] == "Linear.weight"),
        "ff-only": each(_global, keep=lambda p: not p["role"].startswith("LayerNorm.")),
        "rms": each(lambda ps: _global(ps) / np.sqrt(sum(p["count"] for p in ps))),
        "l1": each(lambda ps: sum(p["l1"] for p in ps)),
        "max-abs": each(lambda ps: max(p["max"] for p in ps)),
        "parameter-values": each(_global, blocks=report["values"][:n]),
        "reversed": expected[::-1],
        **{f"loss:{loss}": each(_global, blocks=report[f"grads:{loss}"][:n]) for loss in LOSS_VARIANTS},
        **{  # one parameter per block, the first or any other
            f"single:{role}": [float(block[index]["l2"]) for block in blocks]
            for index, role in enumerate(_roles(blocks[0]))
        },
    }
    return expected, variants


def _roles(parameters) -> list[str]:
    """Each parameter's role in the block, numbered where two share one: "LayerNorm.weight", "Linear.weight #2"."""
    roles = [p["role"] for p in parameters]
    return [role + (f" #{roles[:i].count(role) + 1}" if roles.count(role) > 1 else "") for i, role in enumerate(roles)]


LOSS_VARIANTS = ("summed", "squared", "output-mean", "output-sum")


def scale_of(actual, expected) -> float | None:
    """The constant c with actual = c * expected, block by block (to 0.1 %), or None."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if not np.all(expected > 0):
        return None
    ratios = actual / expected
    return float(ratios[0]) if np.allclose(ratios, ratios[0], rtol=1e-3) and ratios[0] > 0 else None


def describe(values) -> str:
    return " ".join(f"{v:.3g}" for v in values)


def silent_sublayer_matches(learner, placement) -> str:
    """With ff's output forced to zero, a Pre-LN block must return x and a Post-LN block ln(x)."""
    for kind, target in (("pre", "x"), ("post", "ln(x)")):
        name, formula, _ = placement[kind]
        result = learner.probe(probes.with_silent_sublayer, kind, 3, during=f"calling {name}.forward")
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
