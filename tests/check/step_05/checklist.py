"""Step 05 checklist: Pre-LN and Post-LN blocks, and the gradient-norm experiment of Xiong et al. 2020.

Placement is judged by behaviour: the block's output is compared with every arrangement of its own
`ln` and `ff` (recomputed in the learner's process, judged here). The trend is judged on the numbers
the learner's experiment returns. `--plot PATH` draws them. The judging is in `judging.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.check.kit import Checklist, Fail, LearnerError, Mistake, error_hints, expect_close
from tests.check.step_05 import probes
from tests.check.step_05.judging import (
    describe,
    experiment,
    foundation,
    gradient_norm_variants,
    in_place_named,
    judge_placement,
    norms_list,
    plot_gradient_norms,
    scale_of,
    silent_sublayer_matches,
)

D_MODEL, D_FF = probes.D_MODEL, probes.D_FF
EXPERIMENT = {"n_layers": 12, "d_model": 64, "d_ff": 256, "batch": 64, "seeds": list(range(8))}
POST_GROWTH, PRE_SPREAD, PRE_STREAM_GROWTH = 1.4, 1.4, 1.3  # measured: about 1.85, 1.17 and 1.75

# For each block: the arrangement of its own ln and ff that its output matches -> the hint that names it.
PRE_MISTAKES = {
    "post": "This is the Post-LN formula ln(x + ff(x)): the placements are swapped. Pre-LN normalises the sublayer's "
    "input and adds the raw x back: x + ff(ln(x))",
    "ff(ln(x))": "The residual connection is missing: add x back, x + ff(ln(x))",
    "x + ln(ff(x))": "The LayerNorm is on the wrong tensor (the sublayer's output): Pre-LN normalises what goes into "
    "ff, x + ff(ln(x))",
    "ln(x) + ff(ln(x))": "The residual adds ln(x) instead of x: the residual stream carries the raw x, "
    "h = self.ln(x); return x + self.ff(h)",
    "ln(x + ff(ln(x)))": "There is an extra LayerNorm on the block's output: in Pre-LN the residual stream is never "
    "normalised inside the blocks (the stack's final LayerNorm does that once)",
    "x + ff(x)": "The LayerNorm is not used: x + ff(ln(x))",
}
POST_MISTAKES = {
    "pre": "This is the Pre-LN formula x + ff(ln(x)): the placements are swapped. Post-LN adds first, then "
    "normalises the sum: ln(x + ff(x))",
    "ln(ff(x))": "The residual connection is missing: normalise the sum with x, ln(x + ff(x))",
    "x + ln(ff(x))": "The LayerNorm is on the wrong tensor (the sublayer's output, before the residual add): Post-LN "
    "normalises the sum, ln(x + ff(x))",
    "ln(x) + ff(x)": "The LayerNorm is on the wrong tensor (the residual x): Post-LN normalises the sum, ln(x + ff(x))",
    "ln(x + ff(ln(x)))": "The sublayer receives ln(x): in Post-LN it receives x, and the sum is normalised, "
    "ln(x + ff(x))",
    "ln(ln(x) + ff(ln(x)))": "x is normalised on the way in as well: Post-LN normalises only the sum, ln(x + ff(x))",
    "x + ff(x)": "The LayerNorm is not used: ln(x + ff(x))",
}
NORM_MISTAKES = {  # wrong gradient norms -> the hint that names each (keys: `gradient_norm_variants`)
    "sum-of-norms": "The norms add up the parameters' norms one by one: a block's gradient norm is the square root of "
    "the sum of all its squared gradient entries (every parameter together)",
    "squared": "These are squared norms: take the square root of the sum of squares",
    "weights-only": "Only the Linear weights are counted: include every parameter of the block (the biases and the "
    "LayerNorm's weight and bias too)",
    "ff-only": "Only the feed-forward's parameters are counted: include the block's LayerNorm (self.ln's weight and "
    "bias) too, every parameter of the block",
    "rms": "These are root-mean-square gradients (divided by the number of entries): the norm is the square root of "
    "the sum of the squares, not of their mean",
    "l1": "These are sums of absolute values (L1 norms): the norm is the square root of the sum of the squares",
    "max-abs": "These are the largest absolute gradient entries (max norms): the norm is the square root of the sum of "
    "the squares",
    "parameter-values": "These are the norms of the parameters themselves, not of their gradients: use p.grad",
    "reversed": "The norms are in reverse order: the first value is for the block nearest the input",
    "single": "Only one parameter of each block is counted ({role}): a block's gradient norm takes every parameter of "
    "the block together",
    "loss:summed": "The loss is summed over the rows; the experiment's loss is the mean: (stack(x) @ readout).mean()",
    "loss:squared": "The loss squares the read-out: it is the plain mean, (stack(x) @ readout).mean()",
    "loss:output-mean": "The loss leaves out the readout (stack(x).mean()): it is (stack(x) @ readout).mean()",
    "loss:output-sum": "The loss leaves out the readout (stack(x).sum()): it is (stack(x) @ readout).mean()",
}
PLACEMENT = {
    "pre": ("PreLNBlock", "x + ff(ln(x))", PRE_MISTAKES),
    "post": ("PostLNBlock", "ln(x + ff(x))", POST_MISTAKES),
}


def add_arguments(parser):
    parser.add_argument("--plot", type=Path, metavar="PNG", help="write the figure of gradient norm per block to PNG")


def after(learner, options, report) -> list[str]:
    if not getattr(options, "plot", None):
        return []
    try:
        result = experiment(learner, EXPERIMENT)
    except (Fail, LearnerError) as reason:
        return [f"No figure written to {options.plot}: the experiment did not run ({reason})."]
    plot_gradient_norms(result, EXPERIMENT, options.plot)
    return [f"Figure written to {options.plot}"]


checklist = Checklist(
    step="05",
    preload=("torch",),
    import_timeout=30,
    default_timeout=30,
    add_arguments=add_arguments,
    after=after,
)


# -- checks -----------------------------------------------------------------------------------------
# The experiment checks judge numbers that the blocks, build_stack and gradient_norms produce: while one of those is
# wrong, they are reported "Not run" with its reason, never ✅ on wrong inputs. Each foundation still runs when an
# earlier one failed (its `despite`).
STRUCTURE = "a block's ln or ff is not the step file's (see above); the experiment runs the blocks."
PRE = "PreLNBlock is wrong (see above); the experiment runs it."
POST = "PostLNBlock is wrong (see above); the experiment runs it."
RESIDUAL = "a block's residual connection is wrong (see above); the experiment runs the blocks."
STACK = "build_stack is wrong (see above); the experiment builds its stacks with it."
NORMS = "gradient_norms is wrong (see above); the experiment measures with it."
NO_GRAPH = "does not require grad and does not have a grad_fn"  # autograd's words for a loss with no graph
NO_GRAPH_HINT = (
    "loss.backward() found no graph behind the loss: the forward ran under torch.no_grad() (or its output was "
    "detached), so no gradient reaches the parameters. Run stack(x) with autograd on"
)
UNCHANGED = (  # what is left when the checks above pass
    "Where the blocks, build_stack and gradient_norms pass their checks, look at run_experiment and hidden_rms: are "
    "they the step file's?"
)


@checklist.check(
    "each block holds ln = LayerNorm(d_model) and ff = Linear(d_model, d_ff) → GELU → Linear(d_ff, d_model)"
)
@foundation(STRUCTURE)
def structure(learner):
    report = learner.probe(probes.structure, during="creating the blocks")
    for kind, (name, _, _) in PLACEMENT.items():
        found = report[kind]
        if not found["ln"].endswith("LayerNorm") or found["ln_shape"] != (D_MODEL,):
            raise Fail(
                f"{name}({D_MODEL}, {D_FF}).ln is {found['ln']} over {found['ln_shape']}; keep "
                "self.ln = nn.LayerNorm(d_model) from the step file."
            )
        if found["linear_sizes"] != [(D_MODEL, D_FF), (D_FF, D_MODEL)] or "GELU" not in found["ff"]:
            raise Fail(
                f"{name}({D_MODEL}, {D_FF}).ff is {' → '.join(found['ff'])} with Linear sizes "
                f"{found['linear_sizes']}; keep feed_forward(d_model, d_ff) from the step file."
            )
    return ""


@checklist.check("PreLNBlock computes x + ff(ln(x))", despite=(STRUCTURE,))
@foundation(PRE)
def pre_placement(learner):
    return judge_placement(learner, "pre", PLACEMENT)


@checklist.check("PostLNBlock computes ln(x + ff(x))", despite=(STRUCTURE, PRE))
@foundation(POST)
def post_placement(learner):
    return judge_placement(learner, "post", PLACEMENT)


@checklist.check(
    "the residual connection is there: with ff silenced, PreLNBlock is the identity, PostLNBlock is ln(x)",
    despite=(STRUCTURE, PRE, POST),
)
@foundation(RESIDUAL)
def residual(learner):
    return silent_sublayer_matches(learner, PLACEMENT)


@checklist.check(
    "build_stack: new blocks in an nn.Sequential, with a final LayerNorm after a Pre-LN stack only",
    despite=(STRUCTURE, PRE, POST, RESIDUAL),
)
@foundation(STACK)
def stacks(learner):
    report = learner.probe(probes.stacks, during="calling build_stack")
    for kind, (name, _, _) in PLACEMENT.items():
        found = report[kind]
        if not found["sequential"]:
            raise Fail(f"build_stack('{kind}', ...) returned a {found['type']}; return nn.Sequential(*layers).")
        entries, expected = found["entries"], [name] * 3 + (["LayerNorm"] if kind == "pre" else [])
        if kind == "pre" and entries == [name] * 3:
            raise Fail(
                "The Pre-LN stack has no final LayerNorm: its residual stream is never normalised inside the "
                "blocks, so append nn.LayerNorm(d_model) after the last block."
            )
        if kind == "post" and entries == [name] * 3 + ["LayerNorm"]:
            raise Fail(
                "The Post-LN stack ends with an extra LayerNorm: each Post-LN block already ends with one; only "
                "the Pre-LN stack needs the final LayerNorm."
            )
        if kind == "pre" and entries == ["LayerNorm"] + [name] * 3:
            raise Fail(
                "The Pre-LN stack's final LayerNorm comes first: it goes after the last block, where it normalises the "
                "residual stream once on its way out. Append it: layers.append(nn.LayerNorm(d_model))."
            )
        blocks = entries.count(name)
        if blocks != 3 and set(entries) <= {name, "LayerNorm"}:
            raise Fail(
                f"build_stack('{kind}', 3, ...) built {blocks} {name}s: it ignores n_layers. Build one block per "
                "layer: [block(d_model, d_ff) for _ in range(n_layers)]."
            )
        if (
            entries[:3] != [name] * 3
            or len(entries) != len(expected)
            or not (kind == "post" or found["layernorm_last"])
        ):
            raise Fail(f"build_stack('{kind}', 3, ...) holds {entries}; expected {expected}.")
        if not found["distinct"] or found["shared_parameters"]:
            raise Fail(
                f"build_stack('{kind}', ...) repeats the same block ([block] * n_layers): the layers share "
                "their weights. Create a new block for each layer."
            )
        expected_sizes = [(D_MODEL, D_FF), (D_FF, D_MODEL)]
        ignored = [sizes for sizes in found["linear_sizes"] if sizes != expected_sizes]
        if ignored:
            raise Fail(
                f"build_stack('{kind}', 3, d_model={D_MODEL}, d_ff={D_FF}) built blocks whose Linear sizes are "
                f"{ignored[0]}, not {expected_sizes}: it ignores d_ff (or d_model). Build each block as "
                "block(d_model, d_ff)."
            )
        if found["output_shape"] != (2, D_MODEL):
            raise Fail(f"build_stack('{kind}', ...) maps (2, {D_MODEL}) to {found['output_shape']}.")
        weights = [record.values for record in found["block_weights"]]
        if all(np.array_equal(weights[0], other) for other in weights[1:]):
            raise Fail(
                f"build_stack('{kind}', 3, ...) makes 3 blocks that start with identical weights: it reseeds before "
                "each block (torch.manual_seed in the loop) or copies one block (copy.deepcopy). Create each block "
                "with block(d_model, d_ff), without reseeding, so that each draws its own weights."
            )
    judge_reseeding(report["reseeded"])
    return "pre: 3 PreLNBlocks + LayerNorm; post: 3 PostLNBlocks"


def judge_reseeding(after_seeds) -> None:
    """build_stack called after torch.manual_seed(1), then (2): other weights, and the caller's random numbers left
    alone. Equal weights or equal next draws mean it seeds the random generator itself."""
    (one, two) = after_seeds
    same = [np.array_equal(one[key].values, two[key].values) for key in ("weights", "next")]
    if same[0]:
        raise Fail(
            "build_stack sets the random seed itself: after torch.manual_seed(1) and torch.manual_seed(2) it builds "
            "the same weights, so run_experiment's seeds all measure one stack. Remove torch.manual_seed from "
            "build_stack: the caller seeds."
        )
    if same[1]:
        raise Fail(
            "build_stack resets the random seed (torch.manual_seed inside it): what the caller draws after it is the "
            "same whatever seed the caller set. Remove torch.manual_seed from build_stack: the caller seeds."
        )


@checklist.check(
    "gradient_norms gives each block's gradient norm for loss = mean(stack(x) @ readout)",
    despite=(STRUCTURE, PRE, POST, RESIDUAL, STACK),
)
@foundation(NORMS)
def gradient_norms(learner):
    for kind in ("pre", "post"):
        with in_place_named(), error_hints({NO_GRAPH: NO_GRAPH_HINT}):
            report = learner.probe(probes.gradient_report, kind, 4, during="calling gradient_norms")
        n = report["n_blocks"]
        per_block = len(report["grads:mean"][0])
        returned = len(report["first"]) if isinstance(report["first"], list) else None
        if returned and returned != n and returned % n == 0:
            each = "one per parameter tensor" if returned == n * per_block else f"{returned // n} per block"
            raise Fail(
                f"gradient_norms returned {returned} values for {n} blocks, {each}: a block's norm takes all its "
                "parameters together, the square root of the sum of every squared gradient entry of the block."
            )
        first, second = (norms_list(report[k], "gradient_norms", n) for k in ("first", "second"))
        expected, variants = gradient_norm_variants(report, n)
        if not np.allclose(second, first, rtol=1e-5, atol=1e-7):
            if np.allclose(second, expected, rtol=1e-4, atol=1e-6):
                raise Fail(
                    "The first call's norms include gradients already on the stack: .grad accumulates, so "
                    "clear it with stack.zero_grad() before loss.backward(), not after reading the norms."
                )
            raise Fail(
                f"The norms change from one call to the next ({describe(first)}, then {describe(second)}): .grad "
                "accumulates (call stack.zero_grad() before loss.backward()), or the forward is random (dropout)."
            )
        mistakes = [
            Mistake(
                NORM_MISTAKES[k.partition(":")[0] if k.startswith("single:") else k].format(role=k[7:]),
                lambda v=v: np.array(v),
            )
            for k, v in variants.items()
        ]
        try:
            detail = expect_close(
                np.array(first), expected, name=f"gradient_norms ({kind})", atol=1e-6, rtol=1e-4, mistakes=mistakes
            )
        except Fail as failure:  # no catalogued mistake: norms that are the right ones times a constant still say why
            unnamed = "differs from the float64 oracle" in str(failure)
            raise Fail((unnamed and scaled_loss_hint(first, expected, report)) or str(failure)) from None
    return detail


def scaled_loss_hint(first, expected, report) -> str | None:
    """The hint for norms that are the right ones times a constant: the loss is scaled."""
    scale = scale_of(first, expected)
    if scale is None:
        return None
    told = f"Your norms are the right ones × {scale:.3g}: the loss is scaled."
    if np.isclose(scale, 1 / report["d_model"], rtol=1e-3):
        return (
            f"{told} It averages over the d_model features too ((stack(x) * readout).mean()?): the experiment's loss "
            "is the mean over the rows of the read-out, (stack(x) @ readout).mean()."
        )
    return f"{told} The experiment's loss is (stack(x) @ readout).mean(): the mean over the rows, no other factor."


@checklist.check("Post-LN at initialisation: gradient norms grow towards the output (Xiong et al. 2020)")
def post_trend(learner):
    norms = experiment(learner, EXPERIMENT)["post"]["grad_norms"]
    growth, rising = norms[-1] / norms[0], sum(b > a for a, b in zip(norms, norms[1:], strict=False))
    if growth < POST_GROWTH or rising < 2 * (len(norms) - 1) // 3:
        raise Fail(
            f"Post-LN block gradient norms, input to output: {describe(norms)} (last/first ×{growth:.2f}, "
            f"expected ≥ ×{POST_GROWTH} and mostly rising). {UNCHANGED}"
        )
    return (
        f"block 1: {norms[0]:.3g} → block {len(norms)}: {norms[-1]:.3g} (×{growth:.2f}; {rising}/{len(norms) - 1} "
        "steps up)"
    )


@checklist.check("Pre-LN at initialisation: gradient norms stay roughly flat")
def pre_trend(learner):
    norms = experiment(learner, EXPERIMENT)["pre"]["grad_norms"]
    spread = max(norms) / min(norms)
    if spread > PRE_SPREAD:
        raise Fail(
            f"Pre-LN block gradient norms, input to output: {describe(norms)} (max/min ×{spread:.2f}, expected "
            f"≤ ×{PRE_SPREAD}). {UNCHANGED}"
        )
    return f"between {min(norms):.3g} and {max(norms):.3g} over {len(norms)} blocks (max/min ×{spread:.2f})"


@checklist.check("forward view: Post-LN hidden states have RMS 1 after every block; the Pre-LN residual stream grows")
def forward_view(learner):
    result = experiment(learner, EXPERIMENT)
    post, pre = result["post"]["hidden_rms"], result["pre"]["hidden_rms"]
    if max(abs(v - 1.0) for v in post) > 0.02:
        raise Fail(
            f"Post-LN hidden-state RMS per block: {describe(post)}; each block ends with a LayerNorm (weight 1, "
            "bias 0 at init), so every value should be 1."
        )
    growth = pre[-1] / pre[0]
    if growth < PRE_STREAM_GROWTH or any(b <= a for a, b in zip(pre, pre[1:], strict=False)):
        raise Fail(
            f"Pre-LN hidden-state RMS per block: {describe(pre)}; the residual stream x + ff(ln(x)) should grow "
            f"block after block (last/first ≥ ×{PRE_STREAM_GROWTH})."
        )
    return f"Post-LN RMS {min(post):.3f}…{max(post):.3f}; Pre-LN RMS {pre[0]:.2f} → {pre[-1]:.2f}"
