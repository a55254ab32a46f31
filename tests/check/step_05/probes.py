"""Step 05's learner side: probes that build the learner's Pre-LN and Post-LN blocks and stacks, and report their
outputs, gradients and gradient norms.

Every function here runs in the learner's process (called through `learner.probe`) and returns
plain data or tensors, which the wire turns into `TensorRecord`s; a `Fail` raised here arrives as
that hint. torch is imported here only (`kit.torch_side`), never in the judge.
"""

from __future__ import annotations

from tests.check.engine import Fail
from tests.check.kit.torch_side import torch_module

D_MODEL, D_FF = 16, 32


def new_block(module, kind, seed):
    """A fresh learner block of `kind` with a non-trivial LayerNorm affine, and its `ln` and `ff`."""
    torch = torch_module()
    name = {"pre": "PreLNBlock", "post": "PostLNBlock"}[kind]
    cls = getattr(module, name, None)
    if cls is None:
        raise Fail(f"Your file defines no `{name}` class")
    torch.manual_seed(seed)
    block = cls(D_MODEL, D_FF)
    ln, ff = getattr(block, "ln", None), getattr(block, "ff", None)
    if not callable(ln) or not callable(ff):
        raise Fail(
            f"{name} needs the sub-modules `ln` (the LayerNorm) and `ff` (the feed-forward) that "
            "the step file's __init__ creates; keep their names"
        )
    if isinstance(getattr(ln, "weight", None), torch.Tensor) and isinstance(getattr(ln, "bias", None), torch.Tensor):
        with torch.no_grad():  # ln(x) must differ from a plain standardisation, and from x
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_()
    return block, ln, ff


def structure(module):
    """Types and sizes of each block's `ln` and `ff`."""
    torch = torch_module()
    report = {}
    for kind in ("pre", "post"):
        block, ln, ff = new_block(module, kind, 0)
        layers = list(ff) if isinstance(ff, torch.nn.Sequential) else [ff]
        report[kind] = {
            "ln": type(ln).__name__,
            "ln_shape": tuple(getattr(ln, "normalized_shape", ())),
            "ff": [type(m).__name__ for m in layers],
            "linear_sizes": [(m.in_features, m.out_features) for m in layers if isinstance(m, torch.nn.Linear)],
        }
    return report


def arrangements(module, kind, seed):
    """The block's output (twice, on copies of one (3, 5, d_model) input), every arrangement of its own ln and ff on
    that input, the input before and after the block saw it, and the gradient of the output with respect to x, the
    block's and the right one. Comparisons are left to the judge: the learner's file may patch torch's."""
    torch = torch_module()
    block, ln, ff = new_block(module, kind, seed)
    x = torch.randn(3, 5, D_MODEL) * 3 + 1  # far from normalised, so ln(x) and x differ a lot
    given = x.clone()
    y = block(given)
    again = block(x.clone())
    report = {"y": y, "again": again, "x": x, "x_after": given, "dx": None}
    if isinstance(y, torch.Tensor) and y.shape == x.shape:
        upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        right = {"pre": lambda v: v + ff(ln(v)), "post": lambda v: ln(v + ff(v))}[kind]
        try:
            report["dx"], report["right_dx"] = (input_gradient(torch, f, x, upstream) for f in (block, right))
        except RuntimeError as error:  # an in-place write into x: the judge names it from x_after
            report["dx_error"] = str(error)
    with torch.no_grad():
        plain = lambda v: torch.nn.functional.layer_norm(v, v.shape[-1:])  # noqa: E731  a LayerNorm without ln's affine
        candidates = {
            "pre": x + ff(ln(x)),
            "post": ln(x + ff(x)),
            "ff(ln(x))": ff(ln(x)),
            "ln(ff(x))": ln(ff(x)),
            "x + ln(ff(x))": x + ln(ff(x)),
            "ln(x) + ff(ln(x))": ln(x) + ff(ln(x)),
            "ln(x + ff(ln(x)))": ln(x + ff(ln(x))),
            "ln(x) + ff(x)": ln(x) + ff(x),
            "x + ff(x)": x + ff(x),
            "ln(ln(x) + ff(ln(x)))": ln(ln(x) + ff(ln(x))),
            "x + ff(plain(x))": x + ff(plain(x)),
            "plain(x + ff(x))": plain(x + ff(x)),
        }
    return {**report, "candidates": candidates}


def input_gradient(torch, forward, x, upstream):
    """d sum(forward(x) * upstream) / dx; zeros where the output does not depend on x at all."""
    x = x.clone().requires_grad_(True)
    y = forward(x)
    if not y.requires_grad:
        return torch.zeros_like(x)
    (dx,) = torch.autograd.grad((y * upstream).sum(), x, allow_unused=True)
    return torch.zeros_like(x) if dx is None else dx


def with_silent_sublayer(module, kind, seed):
    """The block's output with ff's last Linear zeroed (ff(anything) = 0), and x and ln(x)."""
    torch = torch_module()
    block, ln, ff = new_block(module, kind, seed)
    last = [m for m in ff.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    x = torch.randn(4, D_MODEL) * 2 + 0.5
    y = block(x.clone())
    with torch.no_grad():
        return {"y": y, "x": x, "ln(x)": ln(x), "0": torch.zeros_like(x), "ln(0)": ln(torch.zeros_like(x))}


def stacks(module):
    """What build_stack returns for both kinds: container type, entries, whether blocks are distinct objects, each
    block's parameters, and what two calls after different seeds give (a build_stack that reseeds shows there)."""
    torch = torch_module()
    report = {}
    for kind in ("pre", "post"):
        stack = module.build_stack(kind, 3, D_MODEL, D_FF)
        entry = {"type": type(stack).__name__, "sequential": isinstance(stack, torch.nn.Sequential)}
        if entry["sequential"]:
            modules = list(stack)
            entry["entries"] = [type(m).__name__ for m in modules]
            entry["layernorm_last"] = isinstance(modules[-1], torch.nn.LayerNorm) if modules else False
            entry["distinct"] = len({id(m) for m in modules}) == len(modules)
            parameters = [p for m in modules for p in m.parameters()]
            entry["shared_parameters"] = len({p.data_ptr() for p in parameters}) < len(parameters)
            entry["output_shape"] = tuple(stack(torch.randn(2, D_MODEL)).shape)
            entry["linear_sizes"] = [  # per block: a d_ff the stack ignores shows here
                [(m.in_features, m.out_features) for m in block.modules() if isinstance(m, torch.nn.Linear)]
                for block in modules[:3]
            ]
            entry["block_weights"] = [_linear_weights(torch, block) for block in modules[:3]]
        report[kind] = entry
    report["reseeded"] = _after_two_seeds(module, torch)
    return report


def _linear_weights(torch, block):
    """A block's Linear weights, flattened into one tensor (the judge compares blocks with it)."""
    weights = [m.weight.detach().reshape(-1) for m in block.modules() if isinstance(m, torch.nn.Linear)]
    return torch.cat(weights) if weights else torch.zeros(0)


def _after_two_seeds(module, torch):
    """For seeds 1 and 2 set before build_stack: its first block's weights and the random state it leaves. Equal
    weights mean build_stack sets the seed itself; an equal state, that it resets the caller's random numbers."""
    found = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        stack = module.build_stack("post", 2, D_MODEL, D_FF)
        first = next(iter(stack), None) if isinstance(stack, torch.nn.Module) else None
        found.append({"weights": _linear_weights(torch, first) if first is not None else None, "next": torch.rand(4)})
    return found


def as_floats(values):
    """A learner's list of norms as floats (0-d tensors and a 1-D tensor are accepted)."""
    torch = torch_module()
    if isinstance(values, torch.Tensor):
        values = values.detach().reshape(-1).tolist()
    if not isinstance(values, (list, tuple)):
        return type(values).__name__
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError, RuntimeError):
        return f"a list of {type(values[0]).__name__}"


LOSSES = {  # the experiment's loss, and the ones learners write instead (named by the judge)
    "mean": lambda out, readout: (out @ readout).mean(),
    "summed": lambda out, readout: (out @ readout).sum(),
    "squared": lambda out, readout: ((out @ readout) ** 2).mean(),
    "output-mean": lambda out, readout: out.mean(),
    "output-sum": lambda out, readout: out.sum(),
}


def gradient_report(module, kind, seed):
    """The learner's gradient_norms on a stack built here (twice), and what each block's parameters hold for the
    experiment's loss and for the losses learners write instead: per parameter, its role and the sizes a norm can be
    made of. The judge builds the right norms, and the wrong ones it names, from them."""
    torch = torch_module()
    block = {"pre": module.PreLNBlock, "post": module.PostLNBlock}[kind]
    torch.manual_seed(seed)
    blocks = [block(D_MODEL, D_FF) for _ in range(4)]
    stack = torch.nn.Sequential(*blocks, *([torch.nn.LayerNorm(D_MODEL)] if kind == "pre" else []))
    x, readout = torch.randn(8, D_MODEL), torch.randn(D_MODEL)
    stack(x).square().sum().backward()  # stale .grad from an earlier backward, as a training loop leaves it
    first = as_floats(module.gradient_norms(stack, x.clone(), readout.clone()))
    second = as_floats(module.gradient_norms(stack, x.clone(), readout.clone()))

    def sizes(tensor):
        flat = tensor.detach().double().reshape(-1)
        return {"l2": flat.norm().item(), "l1": flat.abs().sum().item(), "max": flat.abs().max().item()}

    def per_parameter(values_of):
        return [
            [
                {"role": f"{type(owner).__name__}.{name}", "count": p.numel(), **sizes(values_of(p))}
                for owner in b.modules()
                for name, p in owner.named_parameters(recurse=False)
            ]
            for b in blocks
        ]

    report = {"first": first, "second": second, "n_blocks": len(blocks), "d_model": D_MODEL, "batch": len(x)}
    for name, loss in LOSSES.items():
        stack.zero_grad()
        loss(stack(x), readout).backward()
        report[f"grads:{name}"] = per_parameter(lambda p: p.grad if p.grad is not None else torch.zeros_like(p))
    report["values"] = per_parameter(lambda p: p)
    stack.zero_grad()
    return report


def experiment(module, arguments):
    return module.run_experiment(**arguments)
