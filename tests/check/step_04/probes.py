"""Step 04's learner side: probes that build the learner's nn.Module LayerNorm and report what it holds and computes.

Every function here runs in the learner's process (called through `learner.probe`) and returns
plain data or tensors, which the wire turns into `TensorRecord`s; a `Fail` raised here arrives as
that hint. torch is imported here only (`kit.torch_side`), never in the judge.
"""

from __future__ import annotations

from contextlib import contextmanager

from tests.check.engine import Fail
from tests.check.kit.torch_side import torch_module

NAMES = ("weight", "bias")  # nn.LayerNorm's names for gamma and beta


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
