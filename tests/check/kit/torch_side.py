"""The learner's side of the PyTorch steps: probes that build the learner's modules and report.

Every function here runs in the learner's process (called through `learner.probe`) and returns
plain data or tensors, which the wire turns into `TensorRecord`s; a `Fail` raised here arrives as
that hint. torch is imported here only, never in the judge.
"""

from __future__ import annotations

from contextlib import contextmanager

from tests.check.engine import Fail

NAMES = ("weight", "bias")  # nn.LayerNorm's names for gamma and beta


def torch_module():
    """torch, on one thread: the checks' tensors are tiny, and one thread is immune to a busy machine."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return torch


# -- step 04: the learner's nn.Module LayerNorm -------------------------------------------------
class BuiltinLayerNormUsed(RuntimeError):
    """Raised in the learner's process when PyTorch's own layer norm runs during the ban."""


def build_layer(module, shape, eps=None, dtype=None, affine=None, **keywords):
    """The learner's LayerNorm(shape[, eps]) moved to `dtype`, with `affine` = (weight, bias) copied in."""
    torch = torch_module()
    if not hasattr(module, "LayerNorm"):
        raise Fail("Your file defines no `LayerNorm` class")
    layer = module.LayerNorm(shape, **keywords) if eps is None else module.LayerNorm(shape, eps=eps, **keywords)
    if not isinstance(layer, torch.nn.Module):
        raise Fail(
            "LayerNorm is not an nn.Module: declare it as class LayerNorm(nn.Module) and call "
            "super().__init__() first in __init__"
        )
    if isinstance(layer, torch.nn.LayerNorm):
        raise Fail(
            "LayerNorm subclasses nn.LayerNorm, whose __init__ builds the parameters for you: subclass nn.Module "
            "and create weight and bias yourself (this step builds LayerNorm without nn.LayerNorm)"
        )
    for name, inner in layer.named_modules():
        if isinstance(inner, torch.nn.LayerNorm):
            raise Fail(
                f"LayerNorm holds an nn.LayerNorm (self.{name}), PyTorch's own: this step builds LayerNorm without it. "
                "Compute the mean and biased variance yourself, with weight and bias as your own nn.Parameters"
            )
    layer = layer if dtype is None else layer.to(getattr(torch, dtype))
    expected = (shape,) if isinstance(shape, int) else tuple(shape)
    for name, value in zip(NAMES, affine or (), strict=False):
        tensor = getattr(layer, name, None)
        if not hasattr(layer, name):
            held = ", ".join(n for n, _ in layer.named_parameters()) or "none"
            raise Fail(
                f"LayerNorm({shape!r}) has no `{name}` (its parameters: {held}): name the scale `weight` and the "
                "shift `bias`, as nn.LayerNorm does (state_dict, optimisers and the checks look them up by name)"
            )
        if tensor is None:
            raise Fail(
                f"LayerNorm({shape!r}).{name} is None: create it as an nn.Parameter shaped normalized_shape "
                "(ones for weight, zeros for bias)"
            )
        if not isinstance(tensor, torch.Tensor):
            raise Fail(
                f"LayerNorm({shape!r}).{name} is {type(tensor).__name__}, not a tensor: name the scale `weight` and "
                "the shift `bias`, as nn.LayerNorm does"
            )
        if tuple(tensor.shape) != expected:
            raise Fail(
                f"LayerNorm({shape!r}).{name} has shape {tuple(tensor.shape)}; it must have the shape of "
                f"normalized_shape, {expected}: torch.ones(normalized_shape)"
            )
        if dtype is not None and tensor.dtype != getattr(torch, dtype):
            raise Fail(
                f"LayerNorm.{name} stayed {str(tensor.dtype)[6:]} after layer.to(torch.{dtype}): .to() and "
                ".double() move parameters and buffers, not plain tensor attributes; make it an nn.Parameter"
            )
        with torch.no_grad():
            tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype))
    return layer


def forward(module, shape, x, affine=None, eps=None, dtype=None, **keywords):
    x = torch_module().as_tensor(x)
    return build_layer(module, shape, eps, dtype, affine, **keywords)(x.clone())  # clones: the caller's x stays


def forward_twice(module, shape, x):
    """One layer's output for two copies of `x` (the judge compares them: a random forward shows)."""
    layer, x = build_layer(module, shape), torch_module().as_tensor(x)
    return layer(x.clone()), layer(x.clone())


def gradients(module, shape, x, affine, dy):
    """y, and the gradients of sum(dy * y) w.r.t. x, weight and bias, in the dtype of x."""
    torch = torch_module()
    layer = build_layer(module, shape, 1e-5, str(x.dtype), affine)
    x, conversions, saved = torch.tensor(x, requires_grad=True), [], (torch.Tensor.numpy, torch.Tensor.__array__)
    torch.Tensor.numpy = lambda self, *a, **k: conversions.append(1) or saved[0](self, *a, **k)
    torch.Tensor.__array__ = lambda self, *a, **k: conversions.append(1) or saved[1](self, *a, **k)
    try:
        y = layer(x)
    finally:
        torch.Tensor.numpy, torch.Tensor.__array__ = saved
    if isinstance(y, torch.Tensor) and y.requires_grad:
        (y * torch.as_tensor(dy)).sum().backward()
    grads = {f"d{name}": getattr(getattr(layer, name, None), "grad", None) for name in NAMES}
    return {"y": y, "numpy": bool(conversions), "dx": x.grad, **grads}


@contextmanager
def no_builtin_layer_norm():
    """PyTorch's layer norm raises, by name (F.layer_norm, ...) and at the kernel (any other route)."""
    torch = torch_module()
    from torch.utils._python_dispatch import TorchDispatchMode

    kernels = (torch.ops.aten.layer_norm, torch.ops.aten.native_layer_norm, torch.ops.aten.native_layer_norm_backward)

    class RefuseLayerNormKernels(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in kernels:
                raise BuiltinLayerNormUsed(f"PyTorch's layer norm kernel ran ({func})")
            return func(*args, **(kwargs or {}))

    def banned(label):
        def refuse(*args, **kwargs):
            raise BuiltinLayerNormUsed(f"{label} was called")

        return refuse

    names = [
        (torch.nn.functional, "layer_norm", "F.layer_norm"),
        (torch, "layer_norm", "torch.layer_norm"),
        (torch, "native_layer_norm", "torch.native_layer_norm"),
        (torch.nn.LayerNorm, "forward", "nn.LayerNorm"),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in names]
    try:
        for owner, attr, label in names:
            setattr(owner, attr, banned(label))
        with RefuseLayerNormKernels():
            yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def run_without_builtin(module, cases):
    with no_builtin_layer_norm():
        for shape, x, dy in cases:
            gradients(module, shape, x, None, dy)
    return True


def parameters(module):
    """What LayerNorm(512) and LayerNorm((3, 4)) hold, and whether one SGD step moves weight and bias."""
    torch = torch_module()
    layer, report = build_layer(module, 512), {}
    parameters, buffers = list(layer.parameters()), list(layer.buffers())
    for name in NAMES:
        value = getattr(layer, name, None)
        report[name] = {
            "type": type(value).__name__,
            "tensor": isinstance(value, torch.Tensor),
            "parameter": any(p is value for p in parameters),
            "buffer": any(b is value for b in buffers),
            "requires_grad": getattr(value, "requires_grad", False),
            "value": value,
        }
    wide = build_layer(module, (3, 4))
    report["tuple_shapes"] = {name: tuple(getattr(getattr(wide, name, None), "shape", ())) for name in NAMES}
    report["names"] = sorted(n for n, _ in layer.named_parameters())
    return report


def sgd_step(module):
    """weight and bias before and after one SGD step over layer.parameters() (the judge compares them: the learner's
    file may patch torch's comparisons)."""
    torch = torch_module()
    layer = build_layer(module, 512)
    before = [getattr(layer, name).detach().clone() for name in NAMES]
    optimiser = torch.optim.SGD(layer.parameters(), lr=0.1)
    (layer(torch.randn(4, 512)) * torch.randn(4, 512)).sum().backward()
    optimiser.step()
    return [(b, getattr(layer, n).detach().clone()) for b, n in zip(before, NAMES, strict=True)]


def attributes(module):
    torch = torch_module()

    def plain(shape):  # a torch.Size is a tuple (it compares equal to one), but would cross the wire as a Foreign
        return tuple(shape) if isinstance(shape, torch.Size) else shape

    found = {
        label: (plain(getattr(layer, "normalized_shape", "<missing>")), getattr(layer, "eps", "<missing>"))
        for label, layer in (
            ("512", build_layer(module, 512)),
            ("(3, 4)", build_layer(module, (3, 4))),
            ("[3, 4]", build_layer(module, [3, 4])),
        )
    }
    return found, getattr(build_layer(module, 4, eps=1e-4), "eps", "<missing>")


def state_dict_exchange(module, shape, x, mine, theirs):
    """Learner -> nn.LayerNorm and nn.LayerNorm -> learner, with the outputs after each load."""
    torch = torch_module()
    layer, reference, source, fresh = (
        build_layer(module, shape, affine=mine),
        torch.nn.LayerNorm(shape),
        torch.nn.LayerNorm(shape),
        build_layer(module, shape),
    )
    with torch.no_grad():
        source.weight.copy_(torch.as_tensor(theirs[0]))
        source.bias.copy_(torch.as_tensor(theirs[1]))
    outcomes = []
    for receiver, sender in ((reference, layer), (fresh, source)):
        try:
            receiver.load_state_dict(sender.state_dict())
            outcomes.append(("ok", receiver(torch.as_tensor(x).clone())))
        except Exception as error:  # the verdict is the message
            outcomes.append(("error", f"{type(error).__name__}: {error}"))
    return sorted(layer.state_dict()), *outcomes


def modes(module, x, affine):
    layer, x = build_layer(module, x.shape[-1], affine=affine), torch_module().as_tensor(x)
    return layer.train()(x.clone()), layer.eval()(x.clone())


def input_after(module, x):
    tensor = torch_module().as_tensor(x).clone()
    build_layer(module, x.shape[-1])(tensor)
    return tensor


def mismatches(module, cases):
    """For each (normalized_shape, input shape): ("raised", type, message) or ("returned", output shape)."""
    torch, outcomes = torch_module(), []
    for shape, x_shape in cases:
        layer = build_layer(module, shape)
        layer(torch.ones((2, *((shape,) if isinstance(shape, int) else shape))))  # a matching input first
        try:
            outcomes.append(("returned", tuple(getattr(layer(torch.randn(x_shape)), "shape", ()))))
        except Exception as error:
            outcomes.append(("raised", type(error).__name__, str(error)))
    return outcomes


def low_precision(module, x, affine, dtype):
    """The input as `dtype` sees it (widened again) and the output for it."""
    torch = torch_module()
    x = torch.as_tensor(x).to(getattr(torch, dtype))
    return x.float(), build_layer(module, x.shape[-1], affine=affine)(x)


def keyword_variants(module, x, weight):
    """nn.LayerNorm's optional keywords, only those the learner's __init__ names."""
    import inspect

    accepted, found = inspect.signature(module.LayerNorm.__init__).parameters, {}
    for keyword, affine in (("elementwise_affine", None), ("bias", (weight,))):
        if keyword in accepted:
            layer = build_layer(module, x.shape[-1], affine=affine, **{keyword: False})
            found[f"{keyword}=False"] = {
                "parameters": sorted(n for n, _ in layer.named_parameters()),
                **{n: type(getattr(layer, n, None)).__name__ for n in NAMES},
                "y": layer(torch_module().as_tensor(x)),
            }
    return found


# -- step 05: Pre-LN and Post-LN blocks, stacks, gradient norms ---------------------------------------
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
