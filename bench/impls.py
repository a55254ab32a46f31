"""The implementations being measured, and how to turn each into a timed call.

An implementation lives in one worker process per library (`GROUPS`): MAX's and torch's thread pools
would otherwise keep spinning and steal the two cores from whatever is timed next. Each `prepare_*`
function loads the implementation from a file of the repository (a solution, the learner's step with
`--mine`, or the benchmark's own `bench/tuned_numpy.py`), builds its inputs for one shape, and returns
a zero-argument call to time. Anything missing raises `Unavailable` with a reason the report prints.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from tests.check import REPO_ROOT

EPS = 1e-5


class Unavailable(Exception):
    """This implementation cannot run here; the message says why (missing file, missing name...)."""


@dataclass
class Impl:
    name: str
    group: str  # the worker process it runs in
    passes: tuple[str, ...]
    sources: dict[str, str]  # pass -> file it comes from, relative to the repository root
    prepare: Callable  # (impl, source_path, shape, pass_) -> zero-argument callable
    smallest_shape_only: bool = False  # too slow to measure beyond the smallest shape
    note: str = ""
    threads: dict = field(default_factory=dict)


# -- loading files -------------------------------------------------------------------------------
_loaded: dict[Path, ModuleType] = {}


def load_file(path: Path) -> ModuleType:
    """Import a Python file (or a package directory) by path, once per process."""
    path = Path(path)
    if path in _loaded:
        return _loaded[path]
    target = path / "__init__.py" if path.is_dir() else path
    if not target.exists():
        raise Unavailable(f"{display(path)} does not exist yet")
    name = (
        "bench_loaded_" + "_".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        if path.is_relative_to(REPO_ROOT)
        else "bench_loaded_" + path.stem
    )
    spec = importlib.util.spec_from_file_location(
        name, target, submodule_search_locations=[str(path)] if path.is_dir() else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise Unavailable(f"{display(path)} does not import: {type(error).__name__}: {error}") from error
    _loaded[path] = module
    return module


def display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def attribute(module: ModuleType, *names: str):
    """The first of `names` that the module defines."""
    for name in names:
        if hasattr(module, name):
            return getattr(module, name)
    raise Unavailable(f"{module.__file__ and display(Path(module.__file__))} defines none of {', '.join(names)}")


# -- inputs ----------------------------------------------------------------------------------------
def inputs(shape: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """float32 x, gamma, beta and an upstream gradient dy, the same for every implementation."""
    n, d = shape
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((n, d), dtype=np.float32),
        "gamma": (1.0 + 0.1 * rng.standard_normal(d, dtype=np.float32)).astype(np.float32),
        "beta": (0.1 * rng.standard_normal(d, dtype=np.float32)).astype(np.float32),
        "dy": rng.standard_normal((n, d), dtype=np.float32),
    }


# -- NumPy (steps 01 and 02) ----------------------------------------------------------------------
def prepare_numpy(impl: Impl, source: Path, shape, pass_: str):
    module = load_file(source)
    forward = attribute(module, "layernorm_forward")
    data = inputs(shape)
    x, gamma, beta, dy = data["x"], data["gamma"], data["beta"], data["dy"]
    if pass_ == "forward":
        return lambda: forward(x, gamma, beta, EPS)
    backward = attribute(module, "layernorm_backward")
    _, cache = forward(x, gamma, beta, EPS)  # the cache is made once; only backward is timed
    return lambda: backward(dy, cache)


# -- PyTorch (step 04, and torch's own kernel) -----------------------------------------------------
def _torch_layer(module_or_none, d: int):
    import torch

    if module_or_none is None:  # torch's fused kernel, with parameters like nn.LayerNorm's
        weight = torch.nn.Parameter(torch.ones(d))
        bias = torch.nn.Parameter(torch.zeros(d))
        return lambda x: torch.nn.functional.layer_norm(x, (d,), weight, bias, EPS), [weight, bias]
    layer_class = attribute(module_or_none, "LayerNorm")
    layer = layer_class(d, eps=EPS)
    return layer, list(layer.parameters())


def prepare_torch(impl: Impl, source: Path | None, shape, pass_: str):
    import torch

    module = load_file(source) if source is not None else None
    n, d = shape
    data = inputs(shape)
    layer, parameters = _torch_layer(module, d)
    with torch.no_grad():  # the same gamma and beta as every other implementation
        if len(parameters) == 2 and all(p.shape == (d,) for p in parameters):
            parameters[0].copy_(torch.from_numpy(data["gamma"]))
            parameters[1].copy_(torch.from_numpy(data["beta"]))
    x = torch.from_numpy(data["x"])
    if pass_ == "forward":

        def forward():
            with torch.inference_mode():  # inference: no autograd graph is recorded
                return layer(x)

        return forward
    # Backward alone: record the graph once, then replay its backward with retain_graph=True.
    x = x.clone().requires_grad_(True)
    dy = torch.from_numpy(data["dy"])
    y = layer(x)
    leaves = [x, *parameters]
    return lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True)


# -- MAX (step 03) -----------------------------------------------------------------------------------
def _max_tensor(array: np.ndarray):
    from max.experimental.tensor import Tensor

    return Tensor.from_dlpack(array)  # zero-copy on the CPU


def _realized(tensor):
    """Eager MAX tensors may be realised lazily: make sure the work is done before the clock stops."""
    if not getattr(tensor, "real", True):
        tensor._sync_realize()
    return tensor


_compiled: dict = {}  # (impl name, source, D) -> compiled graph; a symbolic batch serves every N


def _compile_max(impl: Impl, module: ModuleType, d: int):
    """Compile the step's module (max-fused) or its from-scratch function (max-scratch) for (batch, d)."""
    from max.driver import CPU
    from max.dtype import DType
    from max.experimental.nn import Module
    from max.graph import TensorType

    input_type = TensorType(DType.float32, ["batch", d], device=CPU())
    if impl.name == "max-fused":
        compile_helper = getattr(module, "compile_layer_norm", None)
        if compile_helper is not None:
            return compile_helper(d, eps=EPS)
        layer = attribute(module, "LayerNorm")(d, eps=EPS)
        return layer.compile(input_type)
    from_scratch = attribute(module, "layer_norm_from_scratch")
    layer_class = attribute(module, "LayerNorm")

    class FromScratch(Module):
        """The step's parameters, with its composed maths in forward instead of F.layer_norm."""

        def __init__(self):
            super().__init__()
            reference = layer_class(d, eps=EPS)
            self.weight, self.bias = reference.weight, reference.bias

        def forward(self, x):
            return from_scratch(x, self.weight, self.bias, EPS)

    return FromScratch().compile(input_type)


def prepare_max(impl: Impl, source: Path, shape, pass_: str):
    module = load_file(source)
    n, d = shape
    x = _max_tensor(inputs(shape)["x"])
    if impl.name == "max-eager":
        layer = attribute(module, "LayerNorm")(d, eps=EPS)
        return lambda: _realized(layer(x))
    key = (impl.name, str(source), d)
    if key not in _compiled:
        _compiled[key] = _compile_max(impl, module, d)
    run = _compiled[key]
    return lambda: run(x)


# -- Mojo custom op (step 06) -------------------------------------------------------------------------
def prepare_mojo(impl: Impl, source: Path, shape, pass_: str):
    package = Path(source)
    # the step is a folder: a Mojo package plus its Python side, named like the folder
    module = load_file(package / f"{package.name}.py" if package.is_dir() else package)
    compile_helper = attribute(module, "compile_mojo_layer_norm")
    n, d = shape
    data = inputs(shape)
    kernel = impl.name.removeprefix("mojo-")
    key = (impl.name, str(source), d)
    if key not in _compiled:
        _compiled[key] = compile_helper(d, kernel=kernel, eps=EPS, weight=data["gamma"], bias=data["beta"])
    run = _compiled[key]
    x = _max_tensor(data["x"])
    return lambda: run(x)


IMPLS: list[Impl] = [
    Impl(
        "numpy",
        "numpy",
        ("forward", "backward"),
        {"forward": "solutions/solution_01.py", "backward": "solutions/solution_02.py"},
        prepare_numpy,
        note="steps 01 and 02: the solutions, one NumPy expression per line of the formula, one thread",
    ),
    Impl(
        "numpy-tuned",
        "numpy",
        ("forward", "backward"),
        {"forward": "bench/tuned_numpy.py", "backward": "bench/tuned_numpy.py"},
        prepare_numpy,
        note="the same maths tuned for speed: no squared temporary (np.vecdot), in-place updates, np.einsum "
        "for dgamma; one thread",
    ),
    Impl(
        "torch-native",
        "torch",
        ("forward", "backward"),
        {},
        prepare_torch,
        note="torch.nn.functional.layer_norm: one fused ATen kernel per pass",
    ),
    Impl(
        "torch-scratch",
        "torch",
        ("forward", "backward"),
        {"forward": "solutions/solution_04.py", "backward": "solutions/solution_04.py"},
        prepare_torch,
        note="step 04: composed tensor ops; backward by autograd",
    ),
    Impl(
        "max-fused",
        "max",
        ("forward",),
        {"forward": "solutions/solution_03.py"},
        prepare_max,
        note="step 03: the module (F.layer_norm) in a compiled graph",
    ),
    Impl(
        "max-scratch",
        "max",
        ("forward",),
        {"forward": "solutions/solution_03.py"},
        prepare_max,
        note="step 03: layer_norm_from_scratch (mean, variance, rsqrt) in a compiled graph",
    ),
    Impl(
        "max-eager",
        "max",
        ("forward",),
        {"forward": "solutions/solution_03.py"},
        prepare_max,
        smallest_shape_only=True,
        note="step 03: the module called eagerly, through MAX's eager executor; measured at the smallest "
        "shape only, and its per-call time varies from run to run",
    ),
    Impl(
        "mojo-naive",
        "mojo",
        ("forward",),
        {"forward": "solutions/solution_06"},
        prepare_mojo,
        note="step 06: a scalar Mojo kernel, one row after another",
    ),
    Impl(
        "mojo-fast",
        "mojo",
        ("forward",),
        {"forward": "solutions/solution_06"},
        prepare_mojo,
        note="step 06: a SIMD Mojo kernel, rows spread over the cores",
    ),
]
BY_NAME = {impl.name: impl for impl in IMPLS}
GROUPS = ["numpy", "torch", "max", "mojo"]
