"""Step 05 checklist: Pre-LN and Post-LN blocks, and the gradient-norm experiment of Xiong et al. 2020
(seed: the Vietnamese LayerNorm notes, "before (Pre-LayerNorm) or after (Post-LayerNorm) each sublayer").

Placement is judged by behaviour: the block's output is compared with every arrangement of its own
`ln` and `ff` (recomputed in the learner's process, judged here). The trend is judged on the numbers
the learner's experiment returns. `--plot PATH` draws them.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np

from tests.check.engine import Checklist, Fail
from tests.check.judge import Mistake, expect_close
from tests.check.sandbox import LearnerError
from tests.check.wire import Foreign

D_MODEL, D_FF = 16, 32
EXPERIMENT = {"n_layers": 12, "d_model": 64, "d_ff": 256, "batch": 64, "seeds": list(range(8))}
POST_GROWTH, PRE_SPREAD, PRE_STREAM_GROWTH = 1.4, 1.4, 1.3  # measured: about 1.85, 1.17 and 1.75


def add_arguments(parser):
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="write the figure of gradient norm per block (Pre-LN and Post-LN) to this file")



# -- probes: run in the learner's process ---------------------------------------------------------
def _torch():
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and immune to a busy machine
    return torch


def _numpy(value):
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).numpy()
    return value


def _block(learner_module, kind, seed):
    """A fresh learner block of `kind` with a non-trivial LayerNorm affine, and its `ln` and `ff`."""
    torch = _torch()
    name = {"pre": "PreLNBlock", "post": "PostLNBlock"}[kind]
    cls = getattr(learner_module, name, None)
    if cls is None:
        raise Fail(f"your file defines no `{name}` class")
    torch.manual_seed(seed)
    block = cls(D_MODEL, D_FF)
    ln, ff = getattr(block, "ln", None), getattr(block, "ff", None)
    if not callable(ln) or not callable(ff):
        raise Fail(f"{name} needs the sub-modules `ln` (the LayerNorm) and `ff` (the feed-forward) that "
                           "the step file's __init__ creates; keep their names")
    if isinstance(getattr(ln, "weight", None), torch.Tensor) and isinstance(getattr(ln, "bias", None), torch.Tensor):
        with torch.no_grad():  # ln(x) must differ from a plain standardisation, and from x
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_()
    return block, ln, ff


def _structure(learner_module):
    """Types and sizes of each block's `ln` and `ff`."""
    torch = _torch()
    report = {}
    for kind in ("pre", "post"):
        block, ln, ff = _block(learner_module, kind, 0)
        layers = list(ff) if isinstance(ff, torch.nn.Sequential) else [ff]
        report[kind] = {
            "ln": type(ln).__name__, "ln_shape": tuple(getattr(ln, "normalized_shape", ())),
            "ff": [type(m).__name__ for m in layers],
            "linear_sizes": [(m.in_features, m.out_features) for m in layers if isinstance(m, torch.nn.Linear)],
        }
    return report


def _arrangements(learner_module, kind, seed):
    """The block's output, and every arrangement of its own ln and ff, on one (3, 5, d_model) input."""
    torch = _torch()
    block, ln, ff = _block(learner_module, kind, seed)
    x = torch.randn(3, 5, D_MODEL) * 3 + 1  # far from normalised, so ln(x) and x differ a lot
    y = block(x.clone())
    with torch.no_grad():
        candidates = {
            "pre": x + ff(ln(x)), "post": ln(x + ff(x)),
            "ff(ln(x))": ff(ln(x)), "ln(ff(x))": ln(ff(x)), "x + ln(ff(x))": x + ln(ff(x)),
            "ln(x) + ff(ln(x))": ln(x) + ff(ln(x)), "ln(x + ff(ln(x)))": ln(x + ff(ln(x))),
            "ln(x) + ff(x)": ln(x) + ff(x), "x + ff(x)": x + ff(x), "ln(ln(x) + ff(ln(x)))": ln(ln(x) + ff(ln(x))),
        }
    return {"y": _numpy(y) if isinstance(y, torch.Tensor) else ("other", type(y).__name__),
            "candidates": {k: _numpy(v) for k, v in candidates.items()}}


def _with_silent_sublayer(learner_module, kind, seed):
    """The block's output with ff's last Linear zeroed (ff(anything) = 0), and x and ln(x)."""
    torch = _torch()
    block, ln, ff = _block(learner_module, kind, seed)
    last = [m for m in ff.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    x = torch.randn(4, D_MODEL) * 2 + 0.5
    y = block(x.clone())
    with torch.no_grad():
        return {"y": _numpy(y) if isinstance(y, torch.Tensor) else ("other", type(y).__name__),
                "x": _numpy(x), "ln(x)": _numpy(ln(x)), "0": np.zeros(tuple(x.shape)),
                "ln(0)": _numpy(ln(torch.zeros_like(x)))}


def _stacks(learner_module):
    """What build_stack returns for both kinds: container type, entries, whether blocks are distinct."""
    torch = _torch()
    report = {}
    for kind in ("pre", "post"):
        stack = learner_module.build_stack(kind, 3, D_MODEL, D_FF)
        entry = {"type": type(stack).__name__, "sequential": isinstance(stack, torch.nn.Sequential)}
        if entry["sequential"]:
            modules = list(stack)
            entry["entries"] = [type(m).__name__ for m in modules]
            entry["layernorm_last"] = isinstance(modules[-1], torch.nn.LayerNorm) if modules else False
            entry["distinct"] = len({id(m) for m in modules}) == len(modules)
            parameters = [p for m in modules for p in m.parameters()]
            entry["shared_parameters"] = len({p.data_ptr() for p in parameters}) < len(parameters)
            entry["output_shape"] = tuple(stack(torch.randn(2, D_MODEL)).shape)
        report[kind] = entry
    return report


def _as_floats(values):
    """A learner's list of norms as floats (0-d tensors and a 1-D tensor are accepted)."""
    torch = _torch()
    if isinstance(values, torch.Tensor):
        values = values.detach().reshape(-1).tolist()
    if not isinstance(values, (list, tuple)):
        return ("other", type(values).__name__)
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError, RuntimeError):
        return ("other", f"a list of {type(values[0]).__name__}")


def _gradient_report(learner_module, kind, seed):
    """The learner's gradient_norms on a stack built here (twice), and the reference and wrong variants."""
    torch = _torch()
    block = {"pre": learner_module.PreLNBlock, "post": learner_module.PostLNBlock}[kind]
    torch.manual_seed(seed)
    blocks = [block(D_MODEL, D_FF) for _ in range(4)]
    stack = torch.nn.Sequential(*blocks, *([torch.nn.LayerNorm(D_MODEL)] if kind == "pre" else []))
    x, readout = torch.randn(8, D_MODEL), torch.randn(D_MODEL)
    first = _as_floats(learner_module.gradient_norms(stack, x.clone(), readout.clone()))
    second = _as_floats(learner_module.gradient_norms(stack, x.clone(), readout.clone()))

    def norms(loss_of, parameters_of):
        stack.zero_grad()
        loss_of(stack(x)).backward()
        return [[p.grad.norm().item() for p in parameters_of(b) if p.grad is not None] for b in stack]

    mean_loss = lambda out: (out @ readout).mean()  # noqa: E731  the specified loss
    per_parameter = norms(mean_loss, lambda b: list(b.parameters()))
    weights_only = norms(mean_loss, lambda b: [m.weight for m in b.modules() if isinstance(m, torch.nn.Linear)])
    summed = norms(lambda out: (out @ readout).sum(), lambda b: list(b.parameters()))
    stack.zero_grad()
    return {"first": first, "second": second, "per_parameter": per_parameter, "weights_only": weights_only,
            "summed_loss": summed, "n_blocks": len(blocks)}


def _experiment(learner_module, arguments):
    return learner_module.run_experiment(**arguments)


# -- judging ----------------------------------------------------------------------------------------
def block_output(result, name):
    y = result["y"]
    if isinstance(y, tuple) or isinstance(y, Foreign):
        raise Fail(f"{name}.forward returned {y[1] if isinstance(y, tuple) else y.type_name}; it must return a "
                   "tensor (a `return` is missing?).")
    return y


PLACEMENT = {
    "pre": ("PreLNBlock", "x + ff(ln(x))", [
        ("post", "This is the Post-LN formula ln(x + ff(x)): the placements are swapped. Pre-LN normalises the "
                 "sublayer's input and adds the raw x back: x + ff(ln(x))"),
        ("ff(ln(x))", "The residual connection is missing: add x back, x + ff(ln(x))"),
        ("x + ln(ff(x))", "The LayerNorm is on the wrong tensor (the sublayer's output): Pre-LN normalises what "
                          "goes into ff, x + ff(ln(x))"),
        ("ln(x) + ff(ln(x))", "The residual adds ln(x) instead of x: the residual stream carries the raw x, "
                              "h = self.ln(x); return x + self.ff(h)"),
        ("ln(x + ff(ln(x)))", "There is an extra LayerNorm on the block's output: in Pre-LN the residual stream is "
                              "never normalised inside the blocks (the stack's final LayerNorm does that once)"),
        ("x + ff(x)", "The LayerNorm is not used: x + ff(ln(x))"),
    ]),
    "post": ("PostLNBlock", "ln(x + ff(x))", [
        ("pre", "This is the Pre-LN formula x + ff(ln(x)): the placements are swapped. Post-LN adds first, then "
                "normalises the sum: ln(x + ff(x))"),
        ("ln(ff(x))", "The residual connection is missing: normalise the sum with x, ln(x + ff(x))"),
        ("x + ln(ff(x))", "The LayerNorm is on the wrong tensor (the sublayer's output, before the residual add): "
                          "Post-LN normalises the sum, ln(x + ff(x))"),
        ("ln(x) + ff(x)", "The LayerNorm is on the wrong tensor (the residual x): Post-LN normalises the sum, "
                          "ln(x + ff(x))"),
        ("ln(x + ff(ln(x)))", "The sublayer receives ln(x): in Post-LN it receives x, and the sum is normalised, "
                              "ln(x + ff(x))"),
        ("ln(ln(x) + ff(ln(x)))", "x is normalised on the way in as well: Post-LN normalises only the sum, "
                                  "ln(x + ff(x))"),
        ("x + ff(x)", "The LayerNorm is not used: ln(x + ff(x))"),
    ]),
}


def judge_placement(learner, kind) -> str:
    name, formula, mistakes = PLACEMENT[kind]
    details = []
    for seed in (1, 2):
        result = learner.probe(_arrangements, kind, seed, during=f"calling {name}.forward")
        y = block_output(result, name)
        found = result["candidates"]
        expected = found[kind]
        if np.shape(y) != np.shape(expected):
            raise Fail(f"{name} turned an input of shape {np.shape(expected)} into {np.shape(y)}: a block keeps "
                       "the shape (..., d_model).")
        details.append(expect_close(y, expected, name=f"{name}(x)", atol=1e-5, rtol=1e-5, mistakes=[
            Mistake(hint, lambda key=key, found=found: found[key]) for key, hint in mistakes]))
    return f"{formula}: {details[-1]}"


def norms_list(value, what: str, length: int) -> list[float]:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "other":
        raise Fail(f"{what} returned {value[1]}; it must return a list of floats, one per block.")
    if isinstance(value, Foreign) or not isinstance(value, list):
        raise Fail(f"{what} returned {value!r}; it must return a list of floats, one per block.")
    if len(value) == length + 1:
        raise Fail(f"{what} returned {len(value)} values for {length} blocks: it includes the final LayerNorm; "
                   "report the blocks only.")
    if len(value) != length:
        raise Fail(f"{what} returned {len(value)} values for {length} blocks; it must return one per block.")
    if not all(isinstance(v, (int, float)) for v in value):
        raise Fail(f"{what} returned {value!r:.120}; it must return plain floats (use .item()).")
    if not all(np.isfinite(value)):
        raise Fail(f"{what} returned non-finite values: {value}")
    return value


_experiments = weakref.WeakKeyDictionary()  # one experiment per run, shared by the checks and --plot


def experiment(learner) -> dict:
    """The learner's run_experiment with the checklist's arguments, validated (computed once per run)."""
    if learner in _experiments:
        return _experiments[learner]
    result = learner.probe(_experiment, EXPERIMENT, during="running run_experiment")
    n = EXPERIMENT["n_layers"]
    if not isinstance(result, dict) or set(result) != {"pre", "post"}:
        raise Fail(f"run_experiment returned {result!r:.100}; expected {{'pre': {{...}}, 'post': {{...}}}}.")
    for kind in ("pre", "post"):
        for key in ("grad_norms", "hidden_rms"):
            entry = result[kind].get(key) if isinstance(result[kind], dict) else None
            norms_list(entry, f"run_experiment()['{kind}']['{key}']", n)
    _experiments[learner] = result
    return result


def describe(values) -> str:
    return " ".join(f"{v:.3g}" for v in values)


def plot_experiment(result: dict, path: Path) -> None:
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
    grads.set(title="Gradient norm of each block's parameters at init", xlabel="block (input → output)",
              ylabel=r"$\Vert \partial\,\mathrm{loss} / \partial \theta_{\mathrm{block}} \Vert$", ylim=(0, None))
    sizes.set(title="Hidden-state RMS after each block", xlabel="block (input → output)", ylabel="RMS",
              ylim=(0, None))
    for axes in (grads, sizes):
        axes.set_xticks(blocks)
        axes.grid(alpha=0.3)
        axes.legend()
    setup = EXPERIMENT
    figure.suptitle(f"{setup['n_layers']} blocks, d_model={setup['d_model']}, d_ff={setup['d_ff']}, "
                    f"mean over {len(setup['seeds'])} seeds; cf. Xiong et al. 2020", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def after(learner, options) -> list[str]:
    if not getattr(options, "plot", None):
        return []
    try:
        result = experiment(learner)
    except (Fail, LearnerError) as reason:
        return [f"No figure written to {options.plot}: the experiment did not run ({reason})."]
    plot_experiment(result, options.plot)
    return [f"Figure written to {options.plot}"]


checklist = Checklist(step="05", title="Pre-LN vs Post-LN", import_timeout=60, default_timeout=30,
                      add_arguments=add_arguments, after=after)


# -- checks -----------------------------------------------------------------------------------------
@checklist.check("each block holds ln = LayerNorm(d_model) and ff = Linear(d_model, d_ff) → GELU → "
                 "Linear(d_ff, d_model)")
def structure(learner):
    report = learner.probe(_structure, during="creating the blocks")
    for kind, name in (("pre", "PreLNBlock"), ("post", "PostLNBlock")):
        found = report[kind]
        if not found["ln"].endswith("LayerNorm") or found["ln_shape"] != (D_MODEL,):
            raise Fail(f"{name}({D_MODEL}, {D_FF}).ln is {found['ln']} over {found['ln_shape']}; keep "
                       "self.ln = nn.LayerNorm(d_model) from the step file.")
        if found["linear_sizes"] != [(D_MODEL, D_FF), (D_FF, D_MODEL)] or "GELU" not in found["ff"]:
            raise Fail(f"{name}({D_MODEL}, {D_FF}).ff is {' → '.join(found['ff'])} with Linear sizes "
                       f"{found['linear_sizes']}; keep feed_forward(d_model, d_ff) from the step file.")
    return ""


@checklist.check("PreLNBlock computes x + ff(ln(x))")
def pre_placement(learner):
    return judge_placement(learner, "pre")


@checklist.check("PostLNBlock computes ln(x + ff(x))")
def post_placement(learner):
    return judge_placement(learner, "post")


@checklist.check("the residual connection is there: with ff silenced, PreLNBlock is the identity, PostLNBlock is ln(x)")
def residual(learner):
    for kind, name, target, formula in (("pre", "PreLNBlock", "x", "x + ff(ln(x))"),
                                        ("post", "PostLNBlock", "ln(x)", "ln(x + ff(x))")):
        result = learner.probe(_with_silent_sublayer, kind, 3, during=f"calling {name}.forward")
        y = block_output(result, name)
        if np.shape(y) != np.shape(result["x"]):
            raise Fail(f"{name} changed the shape {np.shape(result['x'])} into {np.shape(y)}.")
        if np.allclose(y, result[target], atol=1e-5, rtol=1e-5):
            continue
        silent = f"With ff's output forced to zero, {name} returns"
        if np.allclose(y, result["0"], atol=1e-5) or np.allclose(y, result["ln(0)"], atol=1e-5):
            raise Fail(f"{silent} nothing of x: the residual connection (x + ...) is missing. The block is {formula}.")
        if kind == "pre" and np.allclose(y, result["ln(x)"], atol=1e-5, rtol=1e-5):
            raise Fail(f"{silent} ln(x) instead of x: the residual stream itself is normalised (the Post-LN "
                       f"placement). The block is {formula}.")
        if kind == "pre" and np.allclose(y, result["x"] + result["ln(0)"], atol=1e-5, rtol=1e-5):
            raise Fail(f"{silent} x + ln(0): the LayerNorm is applied to the sublayer's output instead of its input. "
                       f"The block is {formula}.")
        if kind == "post" and np.allclose(y, result["x"], atol=1e-5, rtol=1e-5):
            raise Fail(f"{silent} x unnormalised: the sum is not normalised (the Pre-LN placement). The block is "
                       f"{formula}.")
        raise Fail(f"{silent} neither {target} nor anything recognisable: the residual connection (the `x +`) is "
                   f"missing or misplaced. The block is {formula}.")
    return "x passes through untouched when the sublayer adds nothing"


@checklist.check("build_stack: new blocks in an nn.Sequential, with a final LayerNorm after a Pre-LN stack only")
def stacks(learner):
    report = learner.probe(_stacks, during="calling build_stack")
    for kind, name in (("pre", "PreLNBlock"), ("post", "PostLNBlock")):
        found = report[kind]
        if not found["sequential"]:
            raise Fail(f"build_stack('{kind}', ...) returned a {found['type']}; return nn.Sequential(*layers).")
        entries = found["entries"]
        expected = [name] * 3 + (["LayerNorm"] if kind == "pre" else [])
        if kind == "pre" and entries == [name] * 3:
            raise Fail("The Pre-LN stack has no final LayerNorm: its residual stream is never normalised inside "
                       "the blocks, so append nn.LayerNorm(d_model) after the last block.")
        if kind == "post" and entries == [name] * 3 + ["LayerNorm"]:
            raise Fail("The Post-LN stack ends with an extra LayerNorm: each Post-LN block already ends with one; "
                       "only the Pre-LN stack needs the final LayerNorm.")
        final_ok = kind == "post" or found["layernorm_last"]
        if entries[:3] != [name] * 3 or len(entries) != len(expected) or not final_ok:
            raise Fail(f"build_stack('{kind}', 3, ...) holds {entries}; expected {expected}.")
        if not found["distinct"] or found["shared_parameters"]:
            raise Fail(f"build_stack('{kind}', ...) repeats the same block ([block] * n_layers): the layers share "
                       "their weights. Create a new block for each layer.")
        if found["output_shape"] != (2, D_MODEL):
            raise Fail(f"build_stack('{kind}', ...) maps (2, {D_MODEL}) to {found['output_shape']}.")
    return "pre: 3 PreLNBlocks + LayerNorm; post: 3 PostLNBlocks"


@checklist.check("gradient_norms gives each block's gradient norm for loss = mean(stack(x) @ readout)")
def gradient_norms(learner):
    for kind in ("pre", "post"):
        report = learner.probe(_gradient_report, kind, 4, during="calling gradient_norms")
        n = report["n_blocks"]
        first = norms_list(report["first"], "gradient_norms", n)
        second = norms_list(report["second"], "gradient_norms", n)
        per_parameter = report["per_parameter"][:n]
        expected = [float(np.sqrt(np.sum(np.square(p)))) for p in per_parameter]
        variants = [
            ("The norms add up the parameters' norms one by one: a block's gradient norm is the square root of the "
             "sum of all its squared gradient entries (every parameter together)",
             [float(np.sum(p)) for p in per_parameter]),
            ("These are squared norms: take the square root of the sum of squares", [e * e for e in expected]),
            ("Only the Linear weights are counted: include every parameter of the block (the biases and the "
             "LayerNorm's weight and bias too)",
             [float(np.sqrt(np.sum(np.square(p)))) for p in report["weights_only"][:n]]),
            ("The loss is summed over the rows; the experiment's loss is the mean: (stack(x) @ readout).mean()",
             [float(np.sqrt(np.sum(np.square(p)))) for p in report["summed_loss"][:n]]),
        ]
        if not np.allclose(second, first, rtol=1e-5, atol=1e-7):
            if np.allclose(second, 2 * np.asarray(first), rtol=1e-4):
                raise Fail("A second call gives twice the norms: .grad accumulates across backward passes. Call "
                           "stack.zero_grad() before loss.backward().")
            raise Fail(f"Two calls on the same stack disagree ({describe(first)} vs {describe(second)}).")
        detail = expect_close(np.array(first), expected, name=f"gradient_norms ({kind})", atol=1e-6, rtol=1e-4,
                              mistakes=[Mistake(hint, lambda v=values: np.array(v)) for hint, values in variants])
    return detail


@checklist.check("Post-LN at initialisation: gradient norms grow towards the output (Xiong et al. 2020)")
def post_trend(learner):
    norms = experiment(learner)["post"]["grad_norms"]
    growth = norms[-1] / norms[0]
    rising = sum(b > a for a, b in zip(norms, norms[1:], strict=False))
    if growth < POST_GROWTH or rising < 2 * (len(norms) - 1) // 3:
        raise Fail(f"Post-LN block gradient norms, input to output: {describe(norms)} (last/first ×{growth:.2f}, "
                   f"expected ≥ ×{POST_GROWTH} and mostly rising). Check PostLNBlock, build_stack and "
                   "gradient_norms above.")
    steps = len(norms) - 1
    return f"block 1: {norms[0]:.3g} → block {len(norms)}: {norms[-1]:.3g} (×{growth:.2f}; {rising}/{steps} steps up)"


@checklist.check("Pre-LN at initialisation: gradient norms stay roughly flat")
def pre_trend(learner):
    norms = experiment(learner)["pre"]["grad_norms"]
    spread = max(norms) / min(norms)
    if spread > PRE_SPREAD:
        raise Fail(f"Pre-LN block gradient norms, input to output: {describe(norms)} (max/min ×{spread:.2f}, "
                   f"expected ≤ ×{PRE_SPREAD}). Check PreLNBlock, the final LayerNorm in build_stack, and "
                   "gradient_norms above.")
    return f"between {min(norms):.3g} and {max(norms):.3g} over {len(norms)} blocks (max/min ×{spread:.2f})"


@checklist.check("forward view: Post-LN hidden states have RMS 1 after every block; the Pre-LN residual stream grows")
def forward_view(learner):
    result = experiment(learner)
    post, pre = result["post"]["hidden_rms"], result["pre"]["hidden_rms"]
    if max(abs(v - 1.0) for v in post) > 0.02:
        raise Fail(f"Post-LN hidden-state RMS per block: {describe(post)}; each block ends with a LayerNorm "
                   "(weight 1, bias 0 at init), so every value should be 1.")
    growth = pre[-1] / pre[0]
    if growth < PRE_STREAM_GROWTH or any(b <= a for a, b in zip(pre, pre[1:], strict=False)):
        raise Fail(f"Pre-LN hidden-state RMS per block: {describe(pre)}; the residual stream x + ff(ln(x)) should "
                   f"grow block after block (last/first ≥ ×{PRE_STREAM_GROWTH}).")
    return f"Post-LN RMS {min(post):.3f}…{max(post):.3f}; Pre-LN RMS {pre[0]:.2f} → {pre[-1]:.2f}"
