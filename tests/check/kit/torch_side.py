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
    """Whether one SGD step over layer.parameters() moves weight and bias."""
    torch = torch_module()
    layer = build_layer(module, 512)
    before = [getattr(layer, name).detach().clone() for name in NAMES]
    optimiser = torch.optim.SGD(layer.parameters(), lr=0.1)
    (layer(torch.randn(4, 512)) * torch.randn(4, 512)).sum().backward()
    optimiser.step()
    return [not torch.equal(b, getattr(layer, n).detach()) for b, n in zip(before, NAMES, strict=True)]


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
    """The block's output, and every arrangement of its own ln and ff, on one (3, 5, d_model) input; whether the
    block wrote into its input; and the gradient of its output with respect to x, the block's and the right one."""
    torch = torch_module()
    block, ln, ff = new_block(module, kind, seed)
    x = torch.randn(3, 5, D_MODEL) * 3 + 1  # far from normalised, so ln(x) and x differ a lot
    given = x.clone()
    y = block(given)
    report = {"y": y, "wrote_into_x": not torch.equal(given, x), "dx": None}
    if not report["wrote_into_x"] and isinstance(y, torch.Tensor) and y.shape == x.shape:
        upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        right = {"pre": lambda v: v + ff(ln(v)), "post": lambda v: ln(v + ff(v))}[kind]
        report["dx"], report["right_dx"] = (input_gradient(torch, forward, x, upstream) for forward in (block, right))
    with torch.no_grad():
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
    """What build_stack returns for both kinds: container type, entries, whether blocks are distinct."""
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
        report[kind] = entry
    return report


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


def gradient_report(module, kind, seed):
    """The learner's gradient_norms on a stack built here (twice), and the reference and wrong variants."""
    torch = torch_module()
    block = {"pre": module.PreLNBlock, "post": module.PostLNBlock}[kind]
    torch.manual_seed(seed)
    blocks = [block(D_MODEL, D_FF) for _ in range(4)]
    stack = torch.nn.Sequential(*blocks, *([torch.nn.LayerNorm(D_MODEL)] if kind == "pre" else []))
    x, readout = torch.randn(8, D_MODEL), torch.randn(D_MODEL)
    stack(x).square().sum().backward()  # stale .grad from an earlier backward, as a training loop leaves it
    first = as_floats(module.gradient_norms(stack, x.clone(), readout.clone()))
    second = as_floats(module.gradient_norms(stack, x.clone(), readout.clone()))

    def norms(loss_of, parameters_of):
        stack.zero_grad()
        loss_of(stack(x)).backward()
        return [[p.grad.norm().item() for p in parameters_of(b) if p.grad is not None] for b in stack]

    mean_loss = lambda out: (out @ readout).mean()  # noqa: E731  the specified loss
    per_parameter = norms(mean_loss, lambda b: list(b.parameters()))
    weights_only = norms(mean_loss, lambda b: [m.weight for m in b.modules() if isinstance(m, torch.nn.Linear)])
    summed = norms(lambda out: (out @ readout).sum(), lambda b: list(b.parameters()))
    stack.zero_grad()
    return {
        "first": first,
        "second": second,
        "per_parameter": per_parameter,
        "weights_only": weights_only,
        "summed_loss": summed,
        "n_blocks": len(blocks),
    }


def experiment(module, arguments):
    return module.run_experiment(**arguments)
