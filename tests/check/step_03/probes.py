"""Step 03's learner side: probes of the learner's LayerNorm Module (F.layer_norm, the from-scratch graph,
compile_layer_norm), and the eager kernels compiled together while a second process compiles their graph.

Every function here runs in the learner's process (called through `learner.probe`); MAX is imported
here only, lazily, never in the judge (`judging`). Tensors returned cross the wire as `TensorRecord`s;
a `Fail` raised here arrives as that hint.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np

from tests.check.engine import Fail
from tests.check.kit.max_side import MEMO, creating_on, device_for, dtype_for, ready, to_tensor

DIM = 16  # step 03 uses one feature size everywhere: every new shape in a graph is a new compile
MODULE_HINT = (
    "In MAX 26.7, Module comes from max.experimental.nn and subclasses implement forward(self, x); the old "
    "max.nn.module_v3 import and the __call__ override are gone."
)
_BATCHED: list = []


def ready_for_layer_norm(module, device_name: str, dtype: str = "auto") -> None:
    """`ready`, and the eager kernels of step 03's LayerNorm compiled together (once per process), while a
    second process compiles the learner's own graph (on the CPU, when the kernels are not on disk yet)."""
    ready()
    if _BATCHED:
        return
    beside = _learner_graph_beside(module, device_name, dtype) if device_for(device_name).is_host else None
    _compile_eager_kernels_together(beside)
    _BATCHED.append(True)


# -- the learner's graph, compiled beside the eager kernels ------------------------------------------
COLD_SECONDS = 2.0  # MAX's disk cache serves the batch of eager kernels in a tenth of a second
BACKGROUND_CPU_SECONDS = 60  # a cold compile of a LayerNorm graph takes about 15; a looping file stops here
BACKGROUND_MEMORY = 2 << 30  # bytes (or half the sandbox's limit, if less); a LayerNorm's compile peaked at 1.1 GiB
_BACKGROUND: list = []  # the process compiling the learner's graph, while this one compiles the eager kernels


class _StopBeforeWeights(Exception):
    """Raised where the compiled graph would get its weights: the compile, all the background is for, is done."""


@contextmanager
def _learner_graph_beside(module, device_name, dtype):
    """Around the eager kernels' compile: if it is still running after COLD_SECONDS (a compile, not MAX's disk
    cache), most likely the learner's graph is not on disk either, so a second process compiles it meanwhile."""
    import threading

    timer = threading.Timer(COLD_SECONDS, _start_background_compile, (module, device_name, dtype))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if timer.is_alive():
            timer.join()


def _start_background_compile(module, device_name, dtype) -> None:
    """Compile the learner's `compile_layer_norm` graph in a second process, into MAX's disk cache.

    Each MAX compile costs over ten seconds of one core, whatever its size; on a fresh machine the
    eager kernels (one batch) and the learner's graph are two of them. Run side by side on two cores,
    the compiled-graph check later finds its graph on disk. The second process runs the learner's
    code only in `compile_in_background`, under its own CPU and memory limits, and never decides
    a verdict: if it fails or its graph differs, that check compiles as it would without it.
    """
    import os
    import subprocess
    import sys

    path = getattr(module, "__file__", None)
    if not callable(getattr(module, "compile_layer_norm", None)) or not path:
        return
    args = (path, module.__name__, device_name, dtype)
    command = [sys.executable, "-c", f"from {__name__} import compile_in_background as run; run(*{args!r})"]
    # MAX's Python interop sets PYTHONEXECUTABLE to the interpreter it found on PATH; a child given it
    # would start outside this virtual environment
    env = {name: value for name, value in os.environ.items() if name != "PYTHONEXECUTABLE"}
    quiet = subprocess.DEVNULL  # the learner's prints already showed once, in this process
    try:
        _BACKGROUND.append(subprocess.Popen(command, env=env, stdin=quiet, stdout=quiet, stderr=quiet))
    except OSError:  # no second process: the check compiles the graph itself, as it would have
        pass


def _wait_for_background_compile() -> None:
    """Let the background compile finish (its graph is this process's next compile); stop it if it is stuck, so
    that a looping `compile_layer_norm` costs at most BACKGROUND_CPU_SECONDS more than without it."""
    import subprocess

    import psutil

    while _BACKGROUND:
        process = _BACKGROUND.pop()
        try:
            process.wait(timeout=BACKGROUND_CPU_SECONDS)
        except subprocess.TimeoutExpired:
            try:
                root = psutil.Process(process.pid)
                stuck = [*root.children(recursive=True), root]
            except psutil.Error:
                stuck = []
            for each in stuck:
                try:
                    each.kill()
                except psutil.Error:
                    pass
            process.wait()


COMPILE_EPS = 1e-3  # not the default: a compile_layer_norm that drops its eps argument shows


def _compile_layer_norm(module, device, cast, **keywords):
    """The learner's compile_layer_norm(DIM, eps=COMPILE_EPS, device=...), with dtype=... unless float32, creating on
    `device`."""
    compile_layer_norm = getattr(module, "compile_layer_norm", None)
    if not callable(compile_layer_norm):
        raise Fail("Your file defines no `compile_layer_norm` function.")
    dtype = {} if cast.name == "float32" else {"dtype": cast}
    with creating_on(device, cast):
        return compile_layer_norm(DIM, eps=COMPILE_EPS, device=device, **dtype, **keywords)


class _CompileSeen(BaseException):
    """Raised in place of Module.compile where only the input types it was given are wanted (a BaseException:
    a learner's `except Exception` around the compile must not turn it into their own error)."""


@contextmanager
def stopping_compile():
    """Module.compile records the input types it gets, as plain records, and stops there: nothing is compiled."""
    from max.experimental.nn import Module
    from max.graph import StaticDim

    original, seen = Module.compile, []

    def compile(self, *input_types, **kwargs):
        eps = getattr(self, "eps", None)
        seen.append(
            [
                {"dims": [str(d) for d in t.shape], "static": [isinstance(d, StaticDim) for d in t.shape]}
                | {"dtype": t.dtype.name.lower(), "eps": eps if isinstance(eps, (int, float)) else None}
                if hasattr(t, "shape") and hasattr(t, "dtype")
                else {"type": type(t).__name__}
                for t in input_types
            ]
        )
        raise _CompileSeen

    Module.compile = compile
    try:
        yield seen
    finally:
        Module.compile = original


def compile_input_types(module, device_name, cases, dtype="auto"):
    """For each (batch_dims, dtype name) in `cases`: the input types compile_layer_norm(DIM, ...) hands
    Module.compile, which compiles nothing here. Lazily, so that no eager kernel runs (a new dtype would compile
    one); an empty list when it never calls Module.compile."""
    from max.experimental import functional as F

    ready_for_layer_norm(module, device_name, dtype)
    device, found = device_for(device_name), []
    for batch_dims, dtype_name in cases:
        with F.lazy(), stopping_compile() as seen:
            try:
                _compile_layer_norm(module, device, dtype_for(device, dtype_name), batch_dims=tuple(batch_dims))
            except _CompileSeen:
                pass
        found.append(seen[0] if seen else [])
    return found


def compile_in_background(path: str, module_name: str, device_name: str, dtype: str) -> None:
    """The background process: import the learner's file, then compile their graph and stop before its weights.

    Lazily (F.lazy), so that Tensor.ones in their constructor does not wait for an eager kernel. It leaves with
    os._exit: MAX 26.7 can abort in interpreter teardown, and the exit code says whether the graph compiled.
    """
    import os
    import resource
    import sys
    import threading
    import time

    import psutil
    from max.engine import InferenceSession
    from max.experimental import functional as F

    from tests.check.sandbox import MEMORY_LIMIT
    from tests.check.worker import load_learner_file

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file when a limit stops it
    resource.setrlimit(resource.RLIMIT_CPU, (BACKGROUND_CPU_SECONDS, BACKGROUND_CPU_SECONDS))
    memory_limit = min(BACKGROUND_MEMORY, MEMORY_LIMIT // 2)  # its memory counts in the learner's check

    def memory_guard():
        while psutil.Process().memory_info().rss < memory_limit:
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=memory_guard, daemon=True).start()
    ready()  # eager code in their file runs as in the worker: interpreted, no compiling processes of MAX's own
    sys.path.append(os.path.dirname(path))  # as the worker does: their file may import its neighbours
    compiled = False
    try:
        module = load_learner_file(path, module_name)

        def stop(*args, **kwargs):
            raise _StopBeforeWeights

        InferenceSession.init = InferenceSession.init_all = stop
        device = device_for(device_name)
        with F.lazy():
            _compile_layer_norm(module, device, dtype_for(device, dtype))
    except _StopBeforeWeights:
        compiled = True  # the graph is on disk
    except BaseException:  # their code failed here; the checks will say how, in their own process
        pass
    os._exit(0 if compiled else 1)


class _Collected(Exception):
    """Raised in place of one eager kernel compile: its graph was added to the batch instead."""


def _compile_eager_kernels_together(beside=None) -> None:
    """Compile the eager kernels a LayerNorm meets (on the CPU, float32) in one batch, not one at a time.

    MAX's eager interpreter compiles a kernel the first time it meets an op kind: about 12 s each on a two-core
    machine, whatever the kernel, so a from-scratch LayerNorm alone (Tensor.ones, mean, -, *, +, rsqrt) waits
    over a minute on a fresh machine. Compiled in one module they take about 17 s, and MAX's on-disk cache
    serves that same module in milliseconds on later runs. This reaches into MAX's private interpreter
    (max._interpreter_ops, MAX 26.7); if that changes, the kernels compile one at a time as before: slower,
    never wrong. An op kind left out here (a learner's F.exp, say) compiles on its own when met. `beside` is
    entered around the compile itself (`_learner_graph_beside`).
    """
    try:
        from max._interpreter_ops import gc_compile
        from max.experimental import functional as F
        from max.experimental.tensor import Tensor
        from max.graph import Module

        compile_one_kernel = gc_compile.compile_single_target
    except (ImportError, AttributeError):
        return
    batch, wanted = Module(), []

    def collect(family, key, device, build_graph):
        if key not in {known for _, known, _ in wanted}:
            build_graph(batch)
            wanted.append((family, key, device))
        raise _Collected

    # same-shape operands and ready-made parameters: no other kernel (broadcast, slice) is needed first
    x, weight = Tensor.from_dlpack(np.ones((2, DIM), np.float32)), Tensor.from_dlpack(np.ones(DIM, np.float32))
    ops_met = (
        lambda: Tensor.ones([DIM]),
        lambda: F.layer_norm(x, gamma=weight, beta=weight, epsilon=1e-5),
        lambda: F.mean(x, axis=-1),
        lambda: x - x,
        lambda: x * x,
        lambda: x + x,
        lambda: x / x,
        lambda: F.rsqrt(x),
        lambda: F.sqrt(x),
    )
    gc_compile.compile_single_target = collect
    try:
        for op in ops_met:
            try:
                op().to_numpy()
            except Exception:  # _Collected, or a kernel already compiled in this process
                pass
    finally:
        gc_compile.compile_single_target = compile_one_kernel
    if not wanted:
        return
    try:
        with beside or nullcontext():
            models = gc_compile.session_for(wanted[0][2]).load_all(batch, weights_registry={})
        for family, key, _ in wanted:
            family.cache[key] = models[key]
    except Exception:  # the batch did not compile: each kernel compiles when it is met, as without this
        return


def session_dtype(module, device_name, dtype="auto") -> str:
    """The dtype name ("float32", "bfloat16") the step-03 checks run in, on the device of --device."""
    return dtype_for(device_for(device_name), dtype).name.lower()


# -- step 03: the learner's LayerNorm Module, F.layer_norm, the from-scratch graph, compile ---------
def layer_norm_class(module):
    """The learner's LayerNorm class, or Fail saying what it is instead."""
    from max.experimental.nn import Module

    cls = getattr(module, "LayerNorm", None)
    if cls is None:
        raise Fail("Your file defines no `LayerNorm` class.")
    if not isinstance(cls, type):
        raise Fail(f"`LayerNorm` is not a class ({type(cls).__name__}); it must be a class.")
    if not issubclass(cls, Module):
        bases = " -> ".join(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__[1:-1]) or "a plain class"
        raise Fail(
            f"LayerNorm is not a Module ({bases}): subclass Module from max.experimental.nn (class LayerNorm(Module)), "
            "so MAX can find its parameters and compile it."
        )
    if cls.forward is Module.forward:
        raise Fail("LayerNorm has no forward(). " + MODULE_HINT)
    return cls


def imports(module):
    """The names under which the learner's file holds F, F.layer_norm, Tensor and the tensor module."""
    import max.experimental.functional as functional
    import max.experimental.tensor as tensor_module

    wanted = {
        "functional": functional,
        "layer_norm": functional.layer_norm,
        "tensor": tensor_module.Tensor,
        "tensor_module": tensor_module,
    }
    return {key: sorted(n for n, v in vars(module).items() if v is target) for key, target in wanted.items()}


def class_report(module):
    return "overrides __call__" if "__call__" in vars(layer_norm_class(module)) else ""


def new_layer(module, device_name, dtype="auto", **kwargs):
    ready_for_layer_norm(module, device_name, dtype)
    cls, device = layer_norm_class(module), device_for(device_name)
    with creating_on(device, dtype_for(device, dtype)):
        return cls(DIM, **kwargs), device


_CREATORS = ("ones", "zeros", "full", "constant")


@contextmanager
def devices_named():
    """Records the devices the code inside names itself: Tensor.ones(..., device=...) and its kin, and .to(device).
    Only the outermost call counts (MAX's own calls inside it name the default device)."""
    from max.experimental import functional as F
    from max.experimental.tensor import Tensor

    named, depth = [], [0]

    def spying(original, device_of):
        def spy(*args, **kwargs):
            device = device_of(args, kwargs)
            if depth[0] == 0 and device is not None:
                label = getattr(device, "label", None)
                named.append(f"{label}:{getattr(device, 'id', 0)}" if isinstance(label, str) else str(device))
            depth[0] += 1
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1

        return spy

    keyword = lambda args, kwargs: kwargs.get("device")  # noqa: E731
    patches = [(Tensor, name, spying(getattr(Tensor, name), keyword)) for name in _CREATORS]
    patches += [(F, name, spying(getattr(F, name), keyword)) for name in _CREATORS if hasattr(F, name)]
    patches.append((Tensor, "to", spying(Tensor.to, lambda args, kwargs: args[1] if len(args) > 1 else None)))
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    for owner, name, spy in patches:
        setattr(owner, name, spy)
    try:
        yield named
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def parameter_defaults(module, device_name, other_dtype, dtype="auto"):
    """LayerNorm(DIM) created where MAX's default dtype is `other_dtype` (not the run's): its parameters' dtypes, and
    the devices its __init__ names itself. Lazily (F.lazy), so that no kernel of that dtype is compiled."""
    from max.dtype import DType
    from max.experimental import functional as F

    ready()
    cls, device = layer_norm_class(module), device_for(device_name)
    with creating_on(device, getattr(DType, other_dtype)), devices_named() as named:
        try:
            with F.lazy():
                layer = cls(DIM)
        except Exception:  # their __init__ reads a value (a print, say): eagerly, at the cost of that dtype's kernels
            named.clear()
            layer = cls(DIM)
    found = {name: getattr(getattr(layer, name, None), "dtype", None) for name in ("weight", "bias")}
    return {name: value.name.lower() if value is not None else None for name, value in found.items()} | {
        "devices": named
    }


@contextmanager
def casts_seen():
    """Records the dtype names the code inside casts to (Tensor.cast, F.cast)."""
    from max.experimental import functional as F
    from max.experimental.tensor import Tensor

    seen, originals = [], {"tensor": Tensor.cast, "F": F.cast}

    def tensor_cast(self, dtype, *args, **kwargs):
        seen.append(getattr(dtype, "name", str(dtype)).lower())
        return originals["tensor"](self, dtype, *args, **kwargs)

    def functional_cast(x, dtype, *args, **kwargs):
        seen.append(getattr(dtype, "name", str(dtype)).lower())
        return originals["F"](x, dtype, *args, **kwargs)

    Tensor.cast, F.cast = tensor_cast, functional_cast
    try:
        yield seen
    finally:
        Tensor.cast, F.cast = originals["tensor"], originals["F"]


def fresh(module, device_name, dtype="auto", **kwargs):
    """A new LayerNorm(DIM, **kwargs): its registered parameters, and weight, bias and eps where present."""
    layer, _ = new_layer(module, device_name, dtype, **kwargs)
    report = {name: getattr(layer, name) for name in ("weight", "bias", "eps") if hasattr(layer, name)}
    if not isinstance(report.get("eps", 0.0), (int, float, str, type(None))):
        report["eps"] = repr(report["eps"])
    return dict(report, parameters=sorted(name for name, _ in layer.parameters))


@contextmanager
def spy_on_layer_norm(module):
    """Records every F.layer_norm call (also when imported by name) and graph-level ops.layer_norm."""
    from max.experimental import functional as F
    from max.graph import ops

    calls, originals = [], {"F": F.layer_norm, "ops": ops.layer_norm}

    def spying(kind):
        def spy(*args, **kwargs):
            calls.append((kind, {**dict(zip(("input", "gamma", "beta", "epsilon"), args, strict=False)), **kwargs}))
            return originals[kind](*args, **kwargs)

        return spy

    spies = {kind: spying(kind) for kind in originals}
    patches = [(F, "layer_norm", "F"), (ops, "layer_norm", "ops")]
    patches += [
        (module, name, kind)
        for name, value in vars(module).items()
        for kind, original in originals.items()
        if value is original
    ]
    for owner, name, kind in patches:
        setattr(owner, name, spies[kind])
    try:
        yield calls
    finally:
        for owner, name, kind in reversed(patches):
            setattr(owner, name, originals[kind])


def forward(module, device_name, x, gamma=None, beta=None, eps=None, dtype="auto"):
    """LayerNorm(DIM[, eps]).forward(x) with the given parameters, under a spy on F.layer_norm, in `dtype`."""
    layer, device = new_layer(module, device_name, dtype, **({} if eps is None else {"eps": eps}))
    cast = dtype_for(device, dtype)
    if gamma is not None:
        layer.weight, layer.bias = to_tensor(gamma, device, cast=cast), to_tensor(beta, device, cast=cast)
    given = to_tensor(x, device, cast=cast)
    with spy_on_layer_norm(module) as calls, casts_seen() as casts:
        out = layer.forward(given)
    epsilon = [bound.get("epsilon") for _, bound in calls]
    return {
        "out": out,
        "casts": casts,
        "calls": [
            {
                "kind": kind,
                "gamma_is_bias": bound.get("gamma") is layer.bias,
                "epsilon": e if isinstance(e, (int, float)) else None,
            }
            for (kind, bound), e in zip(calls, epsilon, strict=True)
        ],
    }


def _not_a_tensor(function_name, value) -> str | None:
    """Why `value` is not what a MAX function must return (a forgotten `return`, a NumPy detour), or None."""
    from max.experimental.tensor import Tensor

    if value is None:
        return f"{function_name} returned None: a placeholder is still there, or a `return` is missing."
    if not isinstance(value, Tensor):
        kind = type(value)
        return (
            f"{function_name} returned a {kind.__module__}.{kind.__qualname__}; it must return a MAX Tensor built "
            "from MAX ops (F.mean, F.rsqrt, +, -, *)."
        )
    return None


def from_scratch(module, device_name, xs, gamma, beta, eps, dtype="auto"):
    """layer_norm_from_scratch traced into a graph with a symbolic batch (it must be MAX ops all the way), then
    run eagerly on each of `xs`: tracing proves it compiles, and the interpreter runs it without a compile.

    In float32 whatever `dtype` says: the composition is about the maths (and float32's cancellation), and a
    bfloat16 mean of rows around 100 can be off by a quarter before any mistake of the learner's."""
    ready_for_layer_norm(module, device_name, dtype)
    from max.dtype import DType
    from max.experimental.nn import Module
    from max.graph import TensorType

    function = getattr(module, "layer_norm_from_scratch", None)
    if not callable(function):
        raise Fail("Your file defines no `layer_norm_from_scratch` function.")
    device, problems = device_for(device_name), []
    weights = to_tensor(gamma, device), to_tensor(beta, device)

    def checked(x, gamma, beta):
        out = function(x, gamma, beta, eps)
        problems.append(_not_a_tensor("layer_norm_from_scratch", out))
        if problems[-1]:
            raise TypeError(problems[-1])
        return out

    class FromScratch(Module):
        def __init__(self):
            self.gamma, self.beta = weights

        def forward(self, x):
            return checked(x, self.gamma, self.beta)

    with spy_on_layer_norm(module) as calls, casts_seen() as casts:
        try:
            FromScratch().trace(TensorType(DType.float32, ["batch", DIM], device=device))
            outputs = [checked(to_tensor(x, device), *weights) for x in xs]
        except Exception:
            if problems and problems[-1]:  # MAX may wrap what forward raised; the reason is what matters
                raise Fail(problems[-1]) from None
            raise
    if calls:
        raise Fail(
            "layer_norm_from_scratch calls layer_norm: build it from MAX primitives instead (F.mean over "
            "axis=-1, the mean of the centred square, F.rsqrt, then scale and shift)."
        )
    return {"outputs": outputs, "casts": casts}


def compiled(module, device_name, xs, dtype="auto"):
    """compile_layer_norm(DIM, device=...) once (with dtype=... unless float32), run on each of `xs`, beside the eager
    module."""
    from max.experimental.nn import Module

    ready_for_layer_norm(module, device_name, dtype)
    key, device = ("compiled", device_name, dtype), device_for(device_name)
    cast = dtype_for(device, dtype)
    if key not in MEMO:
        _wait_for_background_compile()
        MEMO[key] = _compile_layer_norm(module, device, cast)
    graph = MEMO[key]
    if graph is None:
        raise Fail("compile_layer_norm returned None: a placeholder is still there, or a `return` is missing.")
    if isinstance(graph, Module):
        raise Fail(
            f"compile_layer_norm returned the {type(graph).__name__} module itself, which runs eagerly: return what "
            "Module.compile returns, return layer.compile(input_type)."
        )
    if not callable(graph):
        raise Fail(f"compile_layer_norm returned a {type(graph).__name__}; return what Module.compile returns.")
    layer, _ = new_layer(module, device_name, dtype, eps=COMPILE_EPS)
    results = []
    for x in xs:
        try:
            out = graph(to_tensor(x, device, cast=cast))
        except Exception as error:  # a static batch size refuses the others; say which
            results.append({"error": f"{type(error).__name__}: {error}"[:300], "batch": len(x)})
            continue
        results.append(
            {
                "compiled": out[0] if isinstance(out, (list, tuple)) else out,
                "eager": layer(to_tensor(x, device, cast=cast)),
            }
        )
    return results


def device_label(module, device_name, dtype="auto"):
    device = device_for(device_name)
    return f"{device.label}:{device.id}"
