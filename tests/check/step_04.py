"""Step 04 checklist: LayerNorm as a PyTorch nn.Module (seeds: "Layer Normalization from Scratch" and the
Vietnamese LayerNorm notes, whose example with eps=1e-4 is checked as given).

Probes (top-level `_name` functions) run in the learner's process and return plain data; every
verdict is taken here against the float64 NumPy oracle of `tests.check.judge`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from tests.check.engine import Checklist, Fail
from tests.check.judge import Mistake, error_hints, expect_close, layernorm, layernorm_grads
from tests.check.sandbox import LearnerError
from tests.check.wire import Foreign

checklist = Checklist(step="04", title="LayerNorm as a PyTorch nn.Module", import_timeout=60, default_timeout=30)

SEED_003_X = [[[2.0, 3.0, 5.0, 6.0]]]
SEED_003_Y = [[[-1.2649, -0.6324, 0.6324, 1.2649]]]  # printed by the seed with eps=1e-4


class BuiltinLayerNormUsed(RuntimeError):
    """Raised in the learner's process when PyTorch's own layer norm runs during the ban."""


# -- probes: run in the learner's process ---------------------------------------------------------
def _torch():
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and immune to a busy machine
    return torch


def _tensor_out(value):
    """A learner's output as ("tensor", float64 array, dtype name) or ("other", type name)."""
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().to("cpu", torch.float64).numpy(), str(value.dtype).removeprefix("torch."))
    kind = type(value)
    return ("other", kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}")


def _layer(learner_module, shape, eps=None, dtype=None, affine=None, **keywords):
    """The learner's LayerNorm(shape[, eps]) moved to `dtype`, with `affine` = (weight, bias) copied in."""
    torch = _torch()
    cls = getattr(learner_module, "LayerNorm", None)
    if cls is None:
        raise Fail("your file defines no `LayerNorm` class")
    layer = cls(shape, **keywords) if eps is None else cls(shape, eps=eps, **keywords)
    if not isinstance(layer, torch.nn.Module):
        raise Fail("LayerNorm is not an nn.Module: declare it as class LayerNorm(nn.Module) and call "
                           "super().__init__() first in __init__")
    if dtype is not None:
        layer = layer.to(getattr(torch, dtype))
    expected = (shape,) if isinstance(shape, int) else tuple(shape)
    for name, value in zip(("weight", "bias"), affine or (), strict=False):
        tensor = getattr(layer, name, None)
        if tensor is None:
            raise Fail(f"LayerNorm({shape!r}).{name} is None: create it as an nn.Parameter shaped "
                               "normalized_shape (ones for weight, zeros for bias)")
        if not isinstance(tensor, torch.Tensor):
            raise Fail(f"LayerNorm({shape!r}).{name} is {type(tensor).__name__}, not a tensor: name the "
                               "scale `weight` and the shift `bias`, as nn.LayerNorm does")
        if tuple(tensor.shape) != expected:
            raise Fail(f"LayerNorm({shape!r}).{name} has shape {tuple(tensor.shape)}; it must have the "
                               f"shape of normalized_shape, {expected}: torch.ones(normalized_shape)")
        if dtype is not None and tensor.dtype != getattr(torch, dtype):
            raise Fail(f"LayerNorm.{name} stayed {str(tensor.dtype).removeprefix('torch.')} after "
                               f"layer.to(torch.{dtype}): .to() and .double() move parameters and buffers, not "
                               "plain tensor attributes; make it an nn.Parameter")
        with torch.no_grad():
            tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype))
    return layer


def _forward(learner_module, shape, x, weight=None, bias=None, eps=None, dtype=None):
    torch = _torch()
    layer = _layer(learner_module, shape, eps, dtype, None if weight is None else (weight, bias))
    return _tensor_out(layer(torch.as_tensor(x)))


@contextmanager
def _watch_numpy(calls: list):
    """Records every tensor -> NumPy conversion (a round trip autograd cannot follow)."""
    torch = _torch()
    saved = torch.Tensor.numpy, torch.Tensor.__array__

    def numpy(self, *args, **kwargs):
        calls.append("numpy")
        return saved[0](self, *args, **kwargs)

    def array(self, *args, **kwargs):
        calls.append("__array__")
        return saved[1](self, *args, **kwargs)

    torch.Tensor.numpy, torch.Tensor.__array__ = numpy, array
    try:
        yield
    finally:
        torch.Tensor.numpy, torch.Tensor.__array__ = saved


def _gradients(learner_module, shape, x, weight, bias, dy, eps=1e-5):
    """y, and the gradients of sum(dy * y) w.r.t. x, weight and bias, in the dtype of x."""
    torch = _torch()
    layer = _layer(learner_module, shape, eps, str(x.dtype), (weight, bias))
    x = torch.tensor(x, requires_grad=True)
    conversions = []
    with _watch_numpy(conversions):
        y = layer(x)
    result = {"numpy": bool(conversions), "y": _tensor_out(y)}
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        return dict(result, connected=False)
    (y * torch.as_tensor(dy)).sum().backward()
    grads = {"dx": x.grad, "dweight": layer.weight.grad, "dbias": layer.bias.grad}
    return dict(result, connected=True, **{k: None if g is None else g.numpy() for k, g in grads.items()})


def _banned(label):
    def refuse(*args, **kwargs):
        raise BuiltinLayerNormUsed(f"{label} was called")

    return refuse


@contextmanager
def _no_builtin_layer_norm():
    """PyTorch's layer norm raises, by name (F.layer_norm, ...) and at the kernel (any other route)."""
    torch = _torch()
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode

    kernels = (torch.ops.aten.layer_norm, torch.ops.aten.native_layer_norm,
               torch.ops.aten.native_layer_norm_backward)

    class RefuseLayerNormKernels(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in kernels:
                raise BuiltinLayerNormUsed(f"PyTorch's layer norm kernel ran ({func})")
            return func(*args, **(kwargs or {}))

    names = [(F, "layer_norm", "F.layer_norm"), (torch, "layer_norm", "torch.layer_norm"),
             (torch, "native_layer_norm", "torch.native_layer_norm"), (torch.nn.LayerNorm, "forward", "nn.LayerNorm")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in names]
    try:
        for owner, attr, label in names:
            setattr(owner, attr, _banned(label))
        with RefuseLayerNormKernels():
            yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def _run_without_builtin(learner_module, cases):
    """Forward and backward for each (shape, x, dy) while PyTorch's layer norm is banned."""
    torch = _torch()
    with _no_builtin_layer_norm():
        for shape, x, dy in cases:
            layer = _layer(learner_module, shape)
            x = torch.tensor(x, requires_grad=True)
            y = layer(x)
            if isinstance(y, torch.Tensor) and y.requires_grad:
                (y * torch.as_tensor(dy)).sum().backward()
    return True


def _describe_parameters(learner_module):
    """What LayerNorm(512) and LayerNorm((3, 4)) hold: their weight and bias, parameters, buffers."""
    torch = _torch()
    layer = _layer(learner_module, 512)
    parameters, buffers = dict(layer.named_parameters()), dict(layer.named_buffers())
    report = {"parameters": sorted(parameters)}
    for name in ("weight", "bias"):
        value = getattr(layer, name, None)
        if not isinstance(value, torch.Tensor):
            report[name] = {"type": type(value).__name__}
            continue
        report[name] = {"type": type(value).__name__, "is_parameter": isinstance(value, torch.nn.Parameter),
                        "registered": any(p is value for p in parameters.values()),
                        "buffer": any(b is value for b in buffers.values()),
                        "requires_grad": bool(value.requires_grad), "shape": tuple(value.shape),
                        "values": value.detach().to(torch.float64).numpy()}
    wide = _layer(learner_module, (3, 4))
    report["tuple_shapes"] = {name: tuple(getattr(wide, name).shape) if isinstance(getattr(wide, name, None),
                                                                                    torch.Tensor) else None
                              for name in ("weight", "bias")}
    return report


def _sgd_step(learner_module, x, dy):
    """weight and bias before and after one SGD step on layer.parameters()."""
    torch = _torch()
    layer = _layer(learner_module, x.shape[-1])
    before = [layer.weight.detach().clone(), layer.bias.detach().clone()]
    optimiser = torch.optim.SGD(layer.parameters(), lr=0.1)
    (layer(torch.as_tensor(x)) * torch.as_tensor(dy)).sum().backward()
    optimiser.step()
    return [not torch.equal(b, a.detach()) for b, a in zip(before, (layer.weight, layer.bias), strict=True)]


def _attributes(learner_module):
    result = {}
    for label, args in (("512", (512,)), ("(3, 4)", ((3, 4),)), ("[3, 4]", ([3, 4],))):
        layer = _layer(learner_module, *args)
        result[label] = (getattr(layer, "normalized_shape", "<missing>"), getattr(layer, "eps", "<missing>"))
    result["eps=1e-4"] = getattr(_layer(learner_module, 4, eps=1e-4), "eps", "<missing>")
    return result


def _state_dict_exchange(learner_module, shape, x, mine, theirs):
    """Learner -> nn.LayerNorm and nn.LayerNorm -> learner, with the outputs after each load."""
    torch = _torch()
    x = torch.as_tensor(x)
    layer = _layer(learner_module, shape, affine=mine)
    keys = sorted(layer.state_dict())
    reference = torch.nn.LayerNorm(shape)
    try:
        reference.load_state_dict(layer.state_dict())
        into_torch = ("ok", _tensor_out(reference(x.clone())))
    except Exception as error:  # the verdict is the message
        into_torch = ("error", f"{type(error).__name__}: {error}")
    source = torch.nn.LayerNorm(shape)
    with torch.no_grad():
        source.weight.copy_(torch.as_tensor(theirs[0]))
        source.bias.copy_(torch.as_tensor(theirs[1]))
    fresh = _layer(learner_module, shape)
    try:
        fresh.load_state_dict(source.state_dict())
        from_torch = ("ok", _tensor_out(fresh(x.clone())))
    except Exception as error:
        from_torch = ("error", f"{type(error).__name__}: {error}")
    return {"keys": keys, "into_torch": into_torch, "from_torch": from_torch}


def _train_and_eval(learner_module, x, weight, bias):
    torch = _torch()
    layer = _layer(learner_module, x.shape[-1], affine=(weight, bias))
    x = torch.as_tensor(x)
    train = _tensor_out(layer.train()(x.clone()))  # clones: an in-place forward is another check's news
    return train, _tensor_out(layer.eval()(x.clone()))


def _batch_and_alone(learner_module, x, index, weight, bias):
    """The output for a batch, and for the row at `index` run on its own (float64)."""
    torch = _torch()
    layer = _layer(learner_module, x.shape[-1], dtype="float64", affine=(weight, bias))
    x = torch.as_tensor(x)
    return _tensor_out(layer(x.clone())), _tensor_out(layer(x[index][None].clone()))


def _input_after(learner_module, x):
    torch = _torch()
    tensor = torch.as_tensor(x).clone()
    _layer(learner_module, x.shape[-1])(tensor)
    return tensor.numpy()


def _mismatches(learner_module, cases):
    """For each (normalized_shape, input shape): ("raised", type, message) or ("returned", output shape)."""
    torch = _torch()
    outcomes = []
    for shape, x_shape in cases:
        layer = _layer(learner_module, shape)
        expected = (shape,) if isinstance(shape, int) else tuple(shape)
        layer(torch.ones((2, *expected)))  # a matching input first: its errors are not the verdict
        try:
            out = layer(torch.randn(x_shape))
            outcomes.append(("returned", tuple(out.shape) if isinstance(out, torch.Tensor) else None))
        except Exception as error:
            outcomes.append(("raised", type(error).__name__, str(error)))
    return outcomes


def _low_precision(learner_module, x, weight, bias, dtype):
    """The input as `dtype` sees it (float64 copy) and the output for it."""
    torch = _torch()
    layer = _layer(learner_module, x.shape[-1], affine=(weight, bias))
    x = torch.as_tensor(x).to(getattr(torch, dtype))
    return x.to(torch.float64).numpy(), _tensor_out(layer(x))


def _keyword_variants(learner_module, x, weight):
    """nn.LayerNorm's optional keywords, only those the learner's __init__ names."""
    import inspect

    torch = _torch()
    accepted = set(inspect.signature(learner_module.LayerNorm.__init__).parameters)
    x = torch.as_tensor(x)
    result = {}
    if "elementwise_affine" in accepted:
        layer = _layer(learner_module, x.shape[-1], elementwise_affine=False)
        result["elementwise_affine=False"] = {
            "parameters": sorted(n for n, _ in layer.named_parameters()),
            "weight": type(getattr(layer, "weight", None)).__name__,
            "bias": type(getattr(layer, "bias", None)).__name__, "y": _tensor_out(layer(x))}
    if "bias" in accepted:
        layer = _layer(learner_module, x.shape[-1], bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(weight))
        result["bias=False"] = {
            "parameters": sorted(n for n, _ in layer.named_parameters()),
            "weight": type(getattr(layer, "weight", None)).__name__,
            "bias": type(getattr(layer, "bias", None)).__name__, "y": _tensor_out(layer(x))}
    return result


# -- judging ----------------------------------------------------------------------------------------
FORWARD_ERRORS = {
    "Can't call numpy() on Tensor that requires grad":
        "forward converts to NumPy: autograd cannot follow a NumPy round trip. Use torch operations only",
    "a leaf Variable that requires grad is being used in an in-place operation":
        "forward modifies x in place (x -= mean, x.sub_(...)): compute new tensors instead",
    "must match the size of tensor":
        "Shapes do not broadcast: keep the statistics with keepdim=True, and weight and bias shaped "
        "normalized_shape",
}


def run(learner, probe, *args, **kwargs):
    with error_hints(FORWARD_ERRORS):
        return learner.probe(probe, *args, during="running your LayerNorm", **kwargs)


def expect_tensor(out, name: str, *, shape, dtype=None) -> np.ndarray:
    """The float64 values of a tensor the learner returned, after checking type, shape and dtype."""
    if isinstance(out, Foreign) or not isinstance(out, tuple):
        raise Fail(f"`{name}` could not be read back ({out!r}).")
    if out[0] != "tensor":
        none = " (a `return` is missing?)" if out[1] == "NoneType" else ""
        raise Fail(f"`{name}` is a {out[1]}{none}; forward must return a torch.Tensor.")
    _, values, actual_dtype = out
    if tuple(values.shape) != tuple(shape):
        raise Fail(f"`{name}` has shape {tuple(values.shape)}, expected {tuple(shape)} (the input's shape).")
    if dtype is not None and actual_dtype != dtype:
        raise Fail(f"`{name}` is {actual_dtype} for a {dtype} input: return the input's dtype (y.to(x.dtype)).")
    if not np.all(np.isfinite(values)):
        raise Fail(f"`{name}` contains NaN or inf: a division by zero, or a square root of a negative number?")
    return values


def random_case(seed: int, x_shape, normalized_shape, dtype="float64"):
    """x with offsets and scales per normalised group, and non-trivial weight and bias."""
    rng = np.random.default_rng(seed)
    n = len(normalized_shape)
    group = tuple(x_shape[:-n]) + (1,) * n
    x = rng.normal(size=x_shape) * rng.uniform(0.5, 3.0, size=group) + rng.normal(size=group) * 2
    weight = rng.uniform(0.5, 2.0, size=normalized_shape) * rng.choice([-1.0, 1.0], size=normalized_shape)
    bias = rng.normal(size=normalized_shape)
    return x.astype(dtype), weight.astype(dtype), bias.astype(dtype)


def axes_of(normalized_shape) -> tuple:
    return tuple(range(-len(normalized_shape), 0))


def forward_mistakes(x, weight, bias, eps, axes) -> list[Mistake]:
    """The classic wrong forwards, in float64, each with the hint that names it."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, weight, bias))
    count = int(np.prod([x.shape[a] for a in axes]))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    unbiased = var * count / (count - 1)
    mistakes = [
        Mistake("The variance is the unbiased one (divided by D-1): torch.var and torch.std default to it. Use "
                "x.var(dim, keepdim=True, unbiased=False) (or correction=0), or ((x - mean)**2).mean(dim)",
                lambda: (x - mean) / np.sqrt(unbiased + eps) * w + b),
        Mistake("eps is outside the square root and the std is the unbiased one (x.std() defaults to D-1): use "
                "(x - mean) / torch.sqrt(var + eps) with the biased var",
                lambda: (x - mean) / (np.sqrt(unbiased) + eps) * w + b),
        Mistake("eps is outside the square root: use (x - mean) / torch.sqrt(var + eps) (or * torch.rsqrt(var + eps)), "
                "not / (std + eps)", lambda: (x - mean) / (np.sqrt(var) + eps) * w + b),
        Mistake("The statistics are taken over the batch (dim 0), as in BatchNorm: LayerNorm normalises each "
                "position over its own trailing normalized_shape dims",
                lambda: layernorm(x, w, b, eps, axes=(0,))),
        Mistake("The statistics are taken over the whole tensor: reduce over the trailing normalized_shape dims only, "
                "with keepdim=True", lambda: layernorm(x, w, b, eps, axes=tuple(range(x.ndim)))),
        Mistake("weight and bias are not applied: return x_hat * self.weight + self.bias", lambda: xhat),
        Mistake("bias is added before scaling by weight: compute x_hat * weight + bias", lambda: (xhat + b) * w),
        Mistake("weight and bias are swapped: weight scales, bias shifts", lambda: xhat * b + w),
        Mistake("Divided by the variance instead of the standard deviation: use torch.sqrt(var + eps)",
                lambda: (x - mean) / (var + eps) * w + b),
        Mistake("The mean is not subtracted: x_hat = (x - mean) / sqrt(var + eps)",
                lambda: x / np.sqrt(var + eps) * w + b),
    ]
    if len(axes) > 1:
        mistakes.insert(0, Mistake(
            f"Only the last dim is normalised: for normalized_shape={tuple(w.shape)} the mean and variance run over "
            f"the last {len(axes)} dims, dim=tuple(range(-len(self.normalized_shape), 0))",
            lambda: layernorm(x, w, b, eps, axes=(-1,))))
    if eps != 1e-5:
        mistakes.append(Mistake("The eps argument is ignored: the result is the one for eps=1e-5. Store it "
                                "(self.eps = eps) and use self.eps", lambda: layernorm(x, w, b, 1e-5, axes)))
    if eps != 0:
        mistakes.append(Mistake("eps is not added: use torch.sqrt(var + self.eps)",
                                lambda: layernorm(x, w, b, 0.0, axes)))
    return mistakes


def forward_matches(learner, x, weight, bias, normalized_shape, *, eps=1e-5, dtype="float64", atol, rtol=1e-6) -> str:
    out = run(learner, _forward, normalized_shape, x, weight, bias, eps=eps, dtype=dtype)
    y = expect_tensor(out, "y", shape=x.shape, dtype=dtype)
    axes = axes_of(np.shape(weight))
    return expect_close(y, layernorm(x, weight, bias, eps, axes=axes), name="y", atol=atol, rtol=rtol,
                        mistakes=forward_mistakes(x, weight, bias, eps, axes))


def detached_mistakes(x, weight, dy, axes, eps=1e-5) -> list[Mistake]:
    """dx when the mean, the variance or both are constants to autograd (the output stays right)."""
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat, g = (x - mean) * rstd, dy * weight
    hint = ("The output is right but dx is not: {} cut from the graph (.detach(), .item(), .data or torch.no_grad()), "
            "so autograd misses the gradient through {}. Compute the statistics with ordinary torch operations on x")
    return [
        Mistake(hint.format("the mean is", "the mean"),
                lambda: rstd * (g - xhat * (g * xhat).mean(axis=axes, keepdims=True))),
        Mistake(hint.format("the variance is", "the variance"), lambda: rstd * (g - g.mean(axis=axes, keepdims=True))),
        Mistake(hint.format("the mean and the variance are", "both"), lambda: rstd * g),
    ]


def shape_label(normalized_shape) -> str:
    return str(normalized_shape[0]) if len(normalized_shape) == 1 else str(tuple(normalized_shape))


# -- checks -----------------------------------------------------------------------------------------
@checklist.check("LayerNorm(512) has weight (ones) and bias (zeros): trainable nn.Parameters shaped normalized_shape")
def parameters_registered(learner):
    report = learner.probe(_describe_parameters, during="creating LayerNorm(512)")
    for name, init in (("weight", "ones"), ("bias", "zeros")):
        info = report[name]
        if "is_parameter" not in info:
            raise Fail(f"LayerNorm(512).{name} is {info['type']}: create self.{name} = nn.Parameter(torch.{init}"
                       "(self.normalized_shape)); the names weight and bias make the state_dict match nn.LayerNorm's.")
        if info["buffer"]:
            raise Fail(f"`{name}` is a buffer (register_buffer): buffers are saved but never trained. "
                       f"Use self.{name} = nn.Parameter(torch.{init}(self.normalized_shape)).")
        if not info["is_parameter"]:
            raise Fail(f"`{name}` is a plain torch.Tensor, not an nn.Parameter: layer.parameters() does not list it, "
                       "so an optimiser never updates it and state_dict() does not save it. Wrap it: "
                       f"self.{name} = nn.Parameter(torch.{init}(self.normalized_shape)).")
        if not info["requires_grad"]:
            raise Fail(f"`{name}` has requires_grad=False: it is frozen and never learns. Leave nn.Parameter's "
                       "default (requires_grad=True).")
        if tuple(info["shape"]) != (512,):
            raise Fail(f"`{name}` has shape {tuple(info['shape'])}, expected (512,): create it with "
                       f"torch.{init}(self.normalized_shape).")
        if not np.all(info["values"] == (1.0 if init == "ones" else 0.0)):
            raise Fail(f"`{name}` does not start as {init}: a fresh LayerNorm must only normalise "
                       "(weight = ones, bias = zeros: the identity affine map).")
    for name, shape in report["tuple_shapes"].items():
        if shape != (3, 4):
            raise Fail(f"LayerNorm((3, 4)).{name} has shape {shape}, expected (3, 4): a tuple normalized_shape "
                       f"needs parameters of that whole shape, torch.ones(self.normalized_shape).")
    rng = np.random.default_rng(40)
    changed = learner.probe(_sgd_step, rng.normal(size=(4, 512)).astype(np.float32),
                            rng.normal(size=(4, 512)).astype(np.float32), during="training LayerNorm for one SGD step")
    for name, moved in zip(("weight", "bias"), changed, strict=True):
        if not moved:
            raise Fail(f"One SGD step over layer.parameters() did not change `{name}`: its gradient does not reach "
                       "it (is it used in forward?).")
    return f"parameters {report['parameters']}; one SGD step updates both"


@checklist.check("normalized_shape is stored as a tuple and eps as given (1e-5 by default)")
def attributes(learner):
    found = learner.probe(_attributes, during="creating LayerNorm")
    expected = {"512": (512,), "(3, 4)": (3, 4), "[3, 4]": (3, 4)}
    for label, (shape, eps) in ((k, found[k]) for k in expected):
        if shape == "<missing>":
            raise Fail(f"LayerNorm({label}) has no `normalized_shape` attribute: store it, as a tuple "
                       "(forward needs its length to know how many trailing dims to normalise).")
        if not (type(shape) is tuple and shape == expected[label]):
            raise Fail(f"LayerNorm({label}).normalized_shape is {shape!r}; nn.LayerNorm stores the tuple "
                       f"{expected[label]}: (normalized_shape,) for an int, tuple(normalized_shape) otherwise.")
        if eps != 1e-5:
            raise Fail(f"LayerNorm({label}).eps is {eps!r}; the default is 1e-5 (store it: self.eps = eps).")
    if found["eps=1e-4"] != 1e-4:
        raise Fail(f"LayerNorm(4, eps=1e-4).eps is {found['eps=1e-4']!r}: store the eps you are given.")
    return ""


@checklist.check("does not use nn.LayerNorm, F.layer_norm, torch.layer_norm or torch.native_layer_norm")
def no_builtin(learner):
    cases = []
    for seed, x_shape, shape in ((41, (3, 8), (8,)), (42, (2, 3, 4), (3, 4))):
        x, _, _ = random_case(seed, x_shape, shape, "float32")
        dy = np.random.default_rng(seed).normal(size=x_shape).astype(np.float32)
        cases.append((shape[0] if len(shape) == 1 else shape, x, dy))
    try:
        with error_hints(FORWARD_ERRORS):
            learner.probe(_run_without_builtin, cases, during="running your LayerNorm with PyTorch's layer norm banned")
    except LearnerError as error:
        if error.exc_type != "BuiltinLayerNormUsed":
            raise
        where = f" (line {error.where[0]}: `{error.where[1]}`)" if error.where else ""
        message = str(error).removeprefix("BuiltinLayerNormUsed: ")
        raise Fail(f"Your LayerNorm calls PyTorch's own layer norm{where}: {message}. The step is to compute it "
                   "yourself: mean, biased variance, (x - mean) / sqrt(var + eps), then weight and bias.") from None
    return "forward and backward ran with them banned"


@checklist.check("seed example: LayerNorm(512) on randn(4, 10, 512) keeps the shape; a position has mean ≈ 0, std ≈ 1")
def seed_example_000(learner):
    x = np.random.default_rng(0).standard_normal((4, 10, 512)).astype(np.float32)
    y = expect_tensor(run(learner, _forward, 512, x), "output", shape=x.shape, dtype="float32")
    expect_close(y, layernorm(x, np.ones(512), np.zeros(512), 1e-5), name="output", atol=2e-5, rtol=1e-5,
                 mistakes=forward_mistakes(x, np.ones(512), np.zeros(512), 1e-5, (-1,)))
    position = y[0, 0]
    mean, biased, unbiased = position.mean(), position.std(), position.std(ddof=1)
    if abs(mean) > 1e-5 or abs(biased - 1.0) > 1e-4:
        raise Fail(f"output[0, 0] has mean {mean:.3g} and biased std {biased:.6f}; expected 0 and 1.")
    return (f"output[0, 0]: mean {mean:.1e}, std {biased:.4f} (biased, what LayerNorm makes 1); the seed's "
            f"`.std()` is torch's unbiased one and prints {unbiased:.4f} for 512 features")


@checklist.check("seed example (eps=1e-4): [[[2, 3, 5, 6]]] gives [[[-1.2649, -0.6324, 0.6324, 1.2649]]]")
def seed_example_003(learner):
    x = np.array(SEED_003_X, np.float32)
    y = expect_tensor(run(learner, _forward, 4, x, eps=1e-4), "output", shape=x.shape, dtype="float32")
    return expect_close(y, SEED_003_Y, name="output", atol=1e-4,
                        mistakes=forward_mistakes(x, np.ones(4), np.zeros(4), 1e-4, (-1,)))


@checklist.check("forward matches the float64 oracle: int normalized_shape, 2-D and 3-D inputs, float32 and float64, "
                 "eps 1e-5 and 0.5")
def forward_int_shape(learner):
    details = {}
    for seed, x_shape, dtype, eps, atol in ((1, (5, 8), "float64", 1e-5, 1e-10), (2, (2, 3, 6), "float64", 1e-5, 1e-10),
                                            (3, (7, 16), "float32", 1e-5, 2e-5), (4, (2, 4, 16), "float32", 1e-5, 2e-5),
                                            (20, (4, 8), "float64", 0.5, 1e-10)):
        shape = (x_shape[-1],)
        x, weight, bias = random_case(seed, x_shape, shape, dtype)
        details[dtype] = forward_matches(learner, x, weight, bias, shape[0], eps=eps, dtype=dtype, atol=atol,
                                         rtol=atol / 2)
    return "; ".join(f"{dtype} {detail}" for dtype, detail in details.items())


@checklist.check("tuple normalized_shape (3, 4) normalises over the last two dims (3-D and 4-D inputs)")
def forward_tuple_shape(learner):
    details = {}
    for seed, x_shape, dtype, atol in ((5, (2, 3, 4), "float64", 1e-10), (6, (2, 5, 3, 4), "float64", 1e-10),
                                       (7, (6, 3, 4), "float32", 2e-5)):
        x, weight, bias = random_case(seed, x_shape, (3, 4), dtype)
        details[dtype] = forward_matches(learner, x, weight, bias, (3, 4), dtype=dtype, atol=atol, rtol=atol / 2)
    return "; ".join(f"{dtype} {detail}" for dtype, detail in details.items())


@checklist.check("gradients w.r.t. x, weight and bias match the oracle (random upstream gradients, int and tuple "
                 "shapes)")
def gradients(learner):
    worst = {}
    for seed, x_shape, shape, dtype in ((8, (6, 10), (10,), "float64"), (9, (2, 3, 10), (10,), "float64"),
                                        (10, (4, 3, 5), (3, 5), "float64"), (21, (2, 2, 3, 5), (3, 5), "float64"),
                                        (22, (5, 12), (12,), "float32")):
        x, weight, bias = random_case(seed, x_shape, shape, dtype)
        dy = np.random.default_rng(seed + 100).normal(size=x_shape).astype(dtype)
        label = shape_label(shape)
        tolerance = 1e-9 if dtype == "float64" else 1e-4
        result = run(learner, _gradients, shape[0] if len(shape) == 1 else shape, x, weight, bias, dy)
        y = expect_tensor(result["y"], "y", shape=x_shape, dtype=dtype)
        axes = axes_of(shape)
        expect_close(y, layernorm(x, weight, bias, 1e-5, axes=axes), name="y", atol=tolerance / 10,
                     rtol=tolerance / 10, mistakes=forward_mistakes(x, weight, bias, 1e-5, axes))
        if not result["connected"] or result["dx"] is None:
            if result["numpy"]:
                raise Fail("No gradient reaches x: forward goes through NumPy (.numpy() / np.asarray), which autograd "
                           "cannot follow. Compute everything with torch operations.")
            raise Fail("No gradient reaches x: the result is cut from the graph (.detach(), .data, .item(), "
                       "torch.no_grad() or a NumPy round trip). Compute everything with torch operations on x.")
        for name in ("dweight", "dbias"):
            if result[name] is None:
                raise Fail(f"LayerNorm.{name[1:]} received no gradient: is it an nn.Parameter, and is it used in "
                           "forward?")
        dx, dweight, dbias = layernorm_grads(x, weight, 1e-5, dy, axes=axes)
        x, weight, dy = (np.asarray(a, np.float64) for a in (x, weight, dy))
        expect_close(result["dx"], dx, name=f"dx (normalized_shape={label}, {dtype})", atol=tolerance,
                     rtol=tolerance, mistakes=detached_mistakes(x, weight, dy, axes))
        expect_close(result["dweight"], dweight, name=f"dweight (normalized_shape={label}, {dtype})",
                     atol=tolerance, rtol=tolerance)
        expect_close(result["dbias"], dbias, name=f"dbias (normalized_shape={label}, {dtype})", atol=tolerance,
                     rtol=tolerance)
        worst[dtype] = max(worst.get(dtype, 0.0), *(float(np.max(np.abs(a - b))) for a, b in (
            (result["dx"], dx), (result["dweight"], dweight), (result["dbias"], dbias))))
    return "; ".join(f"{dtype} max error {error:.1e}" for dtype, error in worst.items())


@checklist.check("state_dict is interchangeable with nn.LayerNorm, both ways")
def state_dict_exchange(learner):
    for seed, x_shape, shape in ((11, (3, 6), (6,)), (12, (2, 3, 4), (3, 4))):
        x, w1, b1 = random_case(seed, x_shape, shape, "float32")
        _, w2, b2 = random_case(seed + 1, x_shape, shape, "float32")
        result = run(learner, _state_dict_exchange, shape[0] if len(shape) == 1 else shape, x, (w1, b1), (w2, b2))
        if result["keys"] != ["bias", "weight"]:
            missing = sorted({"bias", "weight"} - set(result["keys"]))
            extra = sorted(set(result["keys"]) - {"bias", "weight"})
            advice = []
            if missing:
                advice.append(f"{' and '.join(missing)} must be nn.Parameters with exactly these names")
            if extra:
                advice.append(f"register nothing else ({', '.join(extra)}): eps and normalized_shape are plain "
                              "attributes")
            raise Fail(f"state_dict() has keys {result['keys']}; nn.LayerNorm's are ['bias', 'weight']: "
                       f"{'; '.join(advice)}.")
        axes = axes_of(shape)
        for direction, (status, value), weight, bias in (
                ("your state_dict loaded into nn.LayerNorm", result["into_torch"], w1, b1),
                ("nn.LayerNorm's state_dict loaded into yours", result["from_torch"], w2, b2)):
            if status == "error":
                raise Fail(f"{direction} failed: {value}")
            y = expect_tensor(value, f"y after {direction}", shape=x_shape, dtype="float32")
            expect_close(y, layernorm(x, weight, bias, 1e-5, axes=axes), name=f"y after {direction}", atol=2e-5,
                         rtol=1e-5, mistakes=forward_mistakes(x, weight, bias, 1e-5, axes))
    return "keys ['bias', 'weight']; outputs agree after loading either way"


@checklist.check("same output in train() and eval()")
def train_eval(learner):
    x, weight, bias = random_case(13, (5, 7), (7,), "float32")
    train, evaluation = run(learner, _train_and_eval, x, weight, bias)
    train = expect_tensor(train, "y in train()", shape=x.shape, dtype="float32")
    evaluation = expect_tensor(evaluation, "y in eval()", shape=x.shape, dtype="float32")
    if not np.array_equal(train, evaluation):
        raise Fail(f"The output changes between train() and eval() (max difference "
                   f"{np.max(np.abs(train - evaluation)):.2g}): LayerNorm keeps no running statistics and has no "
                   "dropout; it computes the same thing in both modes.")
    return expect_close(train, layernorm(x, weight, bias, 1e-5), name="y", atol=2e-5, rtol=1e-5,
                        mistakes=forward_mistakes(x, weight, bias, 1e-5, (-1,)))


@checklist.check("each position's output is independent of the rest of the batch")
def batch_independent(learner):
    for seed, x_shape, index in ((14, (6, 6), 2), (15, (3, 5, 6), 1)):
        x, weight, bias = random_case(seed, x_shape, (6,))
        x[0] = x[0] * 1000.0 + 50.0  # one loud neighbour
        full, alone = run(learner, _batch_and_alone, x, index, weight, bias)
        full = expect_tensor(full, "y for the batch", shape=x.shape)
        alone = expect_tensor(alone, "y for one item", shape=(1, *x.shape[1:]))
        if not np.allclose(full[index], alone[0], atol=1e-9, rtol=1e-9):
            raise Fail(f"Item {index}'s output changes when the other items in the batch change: the mean and "
                       "variance must be taken over the normalized_shape dims of each position only, never over "
                       "the batch (that is BatchNorm).")
        expect_close(full, layernorm(x, weight, bias, 1e-5), name="y", atol=1e-9, rtol=1e-8,
                     mistakes=forward_mistakes(x, weight, bias, 1e-5, (-1,)))
    return ""


@checklist.check("the input x is not modified")
def input_untouched(learner):
    x, _, _ = random_case(16, (4, 5), (5,), "float32")
    after = run(learner, _input_after, x)
    if not (isinstance(after, np.ndarray) and np.array_equal(after, x)):
        raise Fail("x was modified in place (x -= mean, x.sub_(...), x.div_(...)): the caller's tensor changed. "
                   "Build new tensors: centred = x - mean.")
    return ""


@checklist.check("a shape mismatch raises an error naming both shapes, as nn.LayerNorm does")
def shape_mismatch(learner):
    cases = [(8, (3, 7)), (8, (4, 1)), ((3, 4), (2, 4, 3))]
    outcomes = run(learner, _mismatches, cases)
    for (shape, x_shape), outcome in zip(cases, outcomes, strict=True):
        call = f"LayerNorm({shape!r}) on an input of shape {x_shape}"
        wanted = f"[*, {', '.join(map(str, (shape,) if isinstance(shape, int) else shape))}]"
        fix = ("Compare x.shape[-len(self.normalized_shape):] with self.normalized_shape and raise, e.g. "
               f"ValueError(f\"expected input with shape {wanted}, got {{list(x.shape)}}\").")
        if outcome[0] == "returned":
            raise Fail(f"{call} returned a result of shape {outcome[1]} instead of raising: broadcasting hid the "
                       f"mismatch. {fix}")
        _, kind, message = outcome
        named = ", ".join(map(str, x_shape))
        expected_named = ", ".join(map(str, (shape,) if isinstance(shape, int) else shape))
        if named not in message or expected_named not in message:
            raise Fail(f"{call} raised `{kind}: {message[:120]}`, which does not say which shapes disagree. "
                       f"nn.LayerNorm's says: expected input with shape {wanted}, but got input of size "
                       f"{list(x_shape)}. {fix}")
    return f"e.g. {outcomes[0][1]}: {outcomes[0][2][:100]}"


@checklist.check("float16 and bfloat16 inputs are computed in float32 and returned in the input dtype")
def low_precision(learner):
    details = []
    # Rows far from zero: statistics rounded to 16 bits lose the centring; float32 ones do not.
    for dtype, offset, atol, rtol in (("float16", 300.0, 2e-3, 1e-3), ("bfloat16", 100.0, 1e-2, 8e-3)):
        rng = np.random.default_rng(17)
        x = (offset + rng.normal(size=(64, 128))).astype(np.float32)
        _, weight, bias = random_case(18, (64, 128), (128,), "float32")
        seen, out = run(learner, _low_precision, x, weight, bias, dtype)
        # The same values in float32 first: a wrong forward is named as such, not as a precision problem.
        forward_matches(learner, seen.astype(np.float32), weight, bias, 128, dtype="float32", atol=1e-4, rtol=1e-5)
        if isinstance(out, tuple) and out[0] == "tensor" and out[2] != dtype:
            raise Fail(f"A {dtype} input came back as {out[2]}: compute in float32, then cast the result back "
                       "with y.to(x.dtype).")
        y = expect_tensor(out, f"y for a {dtype} input", shape=x.shape, dtype=dtype)
        expected = layernorm(seen, weight, bias, 1e-5)
        error = float(np.max(np.abs(y - expected)))
        if not np.all(np.abs(y - expected) <= atol + rtol * np.abs(expected)):
            raise Fail(f"The {dtype} result is off by up to {error:.2g} on rows around {offset:g}: the statistics "
                       f"were computed in {dtype}, which keeps only {'3' if dtype == 'float16' else '2'} significant "
                       "digits. Upcast first (h = x.float()), normalise, then return y.to(x.dtype).")
        details.append(f"{dtype}: max error {error:.1e}")
    return "; ".join(details)


@checklist.check("nn.LayerNorm's keywords elementwise_affine=False and bias=False (checked if __init__ takes them)")
def keywords(learner):
    x, weight, _ = random_case(19, (4, 6), (6,), "float32")
    found = learner.probe(_keyword_variants, x, weight, during="creating LayerNorm with nn.LayerNorm's keywords")
    if not found:
        return "not taken by your LayerNorm (optional)"
    for keyword, parameters, scale, present in (("elementwise_affine=False", [], np.ones(6), ()),
                                                ("bias=False", ["weight"], weight, ("weight",))):
        if keyword not in found:
            continue
        result = found[keyword]
        if result["parameters"] != parameters:
            raise Fail(f"LayerNorm(6, {keyword}) has parameters {result['parameters']}; nn.LayerNorm has "
                       f"{parameters}. The missing ones are None (self.bias = None).")
        for name in ("weight", "bias"):
            if name not in present and result[name] != "NoneType":
                raise Fail(f"LayerNorm(6, {keyword}).{name} is a {result[name]}; nn.LayerNorm sets it to None.")
        y = expect_tensor(result["y"], f"y with {keyword}", shape=x.shape, dtype="float32")
        expect_close(y, layernorm(x, scale, np.zeros(6), 1e-5), name=f"y with {keyword}", atol=2e-5, rtol=1e-5)
    return ", ".join(found) + " behave like nn.LayerNorm"
