"""Step 03 checklist: LayerNorm as a Modular MAX module (seed: "Step 03: Implement Layer Normalization").

The seed's twelve lines come first, each verified by running the learner's code; then the
from-scratch composition, 2-D/3-D inputs and the compiled graph.

Time matters here: MAX compiles a kernel the first time it meets an op (tens of seconds each on
a small machine, cached on disk afterwards). So every check reuses one feature size, float32,
and the same few eager ops (Tensor.ones/zeros and F.layer_norm), and the only graphs compiled
are the learner's `compile_layer_norm` and one wrapper around `layer_norm_from_scratch`, each
compiled once per run and cached in the learner's process.
"""

from __future__ import annotations

import importlib.metadata
from contextlib import contextmanager

import numpy as np

from tests.check.engine import Checklist, Fail
from tests.check.judge import Mistake, expect_array, expect_close, layernorm
from tests.check.sandbox import LearnerError

EXPECTED_MAX = "26.7.0"  # the pin in pyproject.toml; the step is written against this API
DIM = 16                 # one feature size everywhere: every new shape in a graph is a new compile
EAGER_TIMEOUT = 180.0    # a check that may meet an op for the first time compiles its kernel
GRAPH_TIMEOUT = 240.0    # a graph compile, cold, on a busy two-core machine
MODULE_HINT = ("In MAX 26.7, Module comes from max.experimental.nn and subclasses implement "
               "forward(self, x); the old max.nn.module_v3 import and the __call__ override are gone.")


def installed_max_version() -> str | None:
    """The installed MAX's version, read from package metadata (importing max takes seconds)."""
    try:
        return importlib.metadata.version("max")
    except importlib.metadata.PackageNotFoundError:
        return None


def _notes(options) -> list[str]:
    lines = []
    installed = installed_max_version()
    if installed is None:
        lines.append(f"⚠️  MAX is not installed here; this tutorial expects max=={EXPECTED_MAX} "
                     "(`make s03` or `pixi run s03` installs it).")
    elif installed != EXPECTED_MAX:
        lines.append(f"⚠️  MAX {installed} is installed; this tutorial expects max=={EXPECTED_MAX}, "
                     "and the MAX API moves between releases.")
    lines.append("MAX compiles its kernels on first use: the first run takes a minute or two, "
                 "later runs take seconds.")
    return lines


def _add_arguments(parser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="where MAX runs the checks (default auto: an accelerator when MAX sees one)")


def _after(learner, options) -> list[str]:
    try:
        return [f"Ran on {learner.probe(_device_label, _device_option(options), during='reading the device')}."]
    except (LearnerError, Fail):
        return []


checklist = Checklist(step="03", title="LayerNorm as a MAX module", import_timeout=180.0,
                      default_timeout=60.0, add_arguments=_add_arguments, notes=_notes, after=_after,
                      import_hints={"module_v3": MODULE_HINT})


# == the learner's side (these run in the learner's process; max is imported there only) ======
_CHILD: dict = {}  # the learner's process keeps compiled graphs and fresh modules between checks


class NoAccelerator(Exception):
    """--device gpu on a machine where MAX sees no accelerator."""


class _InterpretFirst:
    """Runs eager ops in MAX's interpreter and compiles only graphs it refuses.

    MAX's default eager executor also compiles every eager graph in background processes,
    minutes of CPU on a small machine for results these checks never wait for.
    """

    def __init__(self):
        from max.experimental import executor

        self.interpreter = executor.InterpreterExecutor(max_ops=None)
        self.compiler = executor.CompilingExecutor()
        self.refused = executor.UnsupportedGraphError

    def execute(self, graph, inputs):
        try:
            return self.interpreter.execute(graph, inputs)
        except self.refused:
            return self.compiler.execute(graph, inputs)


def _prepare() -> None:
    if _CHILD.get("prepared"):
        return
    import signal

    from max.experimental import executor

    # asyncio.run (inside every eager realization) inspects the SIGINT handler it installs;
    # under Python 3.11 that formats the pending task's repr, which realizes and prints the
    # tensors it holds: dozens of extra eager slice ops. With SIG_DFL it installs nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    executor.set_default_executor(_InterpretFirst())
    _CHILD["prepared"] = True


def _device(name: str):
    from max.driver import CPU, Accelerator, accelerator_count

    if name == "cpu":
        return CPU()
    if accelerator_count():
        return Accelerator()
    if name == "gpu":
        raise NoAccelerator("--device gpu was asked for, but MAX sees no accelerator on this machine")
    return CPU()


def _device_label(learner_module, device_name):
    device = _device(device_name)
    return f"{device.label}:{device.id}"


@contextmanager
def _creating_on(device):
    """Parameters made by Tensor.ones/zeros land on `device`, as float32."""
    from max.dtype import DType
    from max.experimental.tensor import default_device, default_dtype

    with default_device(device), default_dtype(DType.float32):
        yield


def _tensor(array, device):
    from max.experimental.tensor import Tensor

    return Tensor.from_dlpack(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def _described(value):
    """A learner's value as plain data: ("tensor", array, shape, dtype) or ("other", type name)."""
    from max.experimental.tensor import Tensor

    if isinstance(value, Tensor):
        return ("tensor", np.array(value.to_numpy(), copy=True), [int(d) for d in value.shape],
                value.dtype.name)
    kind = type(value)
    return ("other", kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}")


def _layer_norm_class(learner_module):
    from max.experimental.nn import Module

    cls = getattr(learner_module, "LayerNorm", None)
    if cls is None:
        return None, "missing"
    if not isinstance(cls, type):
        return None, f"not a class ({type(cls).__name__})"
    if not issubclass(cls, Module):
        return None, "not a Module: " + " -> ".join(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__[1:-1])
    if cls.forward is Module.forward:
        return None, "no forward"
    return cls, None


def _new_layer(learner_module, device_name, **kwargs):
    _prepare()
    cls, problem = _layer_norm_class(learner_module)
    if problem:
        raise _ClassProblem(problem)
    device = _device(device_name)
    with _creating_on(device):
        layer = cls(DIM, **kwargs)
    return layer, device


class _ClassProblem(Exception):
    pass


@contextmanager
def _spy_on_layer_norm(learner_module):
    """Records every F.layer_norm call (also when imported by name) and graph-level ops.layer_norm."""
    from max.experimental import functional as F
    from max.graph import ops

    calls = []
    original_f, original_ops = F.layer_norm, ops.layer_norm

    def record(kind, original):
        def spy(*args, **kwargs):
            bound = dict(zip(("input", "gamma", "beta", "epsilon"), args, strict=False))
            bound.update(kwargs)
            calls.append((kind, bound))
            return original(*args, **kwargs)
        return spy

    patches = [(F, "layer_norm", original_f, record("F", original_f)),
               (ops, "layer_norm", original_ops, record("ops", original_ops))]
    for name, value in list(vars(learner_module).items()):
        for original, kind in ((original_f, "F"), (original_ops, "ops")):
            if value is original:
                patches.append((learner_module, name, value, record(kind, original)))
    for owner, name, _, spy in patches:
        setattr(owner, name, spy)
    try:
        yield calls
    finally:
        for owner, name, original, _ in reversed(patches):
            setattr(owner, name, original)


def _imports(learner_module):
    import max.experimental.functional as functional
    import max.experimental.tensor as tensor_module

    names = vars(learner_module)
    return {
        "functional": sorted(n for n, v in names.items() if v is functional),
        "layer_norm": sorted(n for n, v in names.items() if v is functional.layer_norm),
        "tensor": sorted(n for n, v in names.items() if v is tensor_module.Tensor),
        "tensor_module": sorted(n for n, v in names.items() if v is tensor_module),
    }


def _class_report(learner_module):
    cls, problem = _layer_norm_class(learner_module)
    if problem:
        return problem
    overrides_call = "__call__" in vars(cls)
    return "ok" + (" (overrides __call__)" if overrides_call else "")


def _fresh(learner_module, device_name, **kwargs):
    """A new LayerNorm(DIM, **kwargs): its parameters and eps as plain data."""
    try:
        layer, _ = _new_layer(learner_module, device_name, **kwargs)
    except _ClassProblem as problem:
        return {"class_problem": str(problem)}
    report = {"parameters": sorted(name for name, _ in layer.parameters)}
    for name in ("weight", "bias"):
        report[name] = _described(getattr(layer, name, None)) if hasattr(layer, name) else ("missing",)
    eps = getattr(layer, "eps", "missing")
    report["eps"] = eps if isinstance(eps, (int, float, str)) or eps is None else repr(eps)
    return report


def _forward(learner_module, device_name, x, gamma=None, beta=None, eps=None):
    """LayerNorm(DIM[, eps]).forward(x) with the given parameters, under a spy on F.layer_norm."""
    try:
        layer, device = _new_layer(learner_module, device_name, **({} if eps is None else {"eps": eps}))
    except _ClassProblem as problem:
        return {"class_problem": str(problem)}
    if gamma is not None:
        layer.weight = _tensor(gamma, device)
        layer.bias = _tensor(beta, device)
    with _spy_on_layer_norm(learner_module) as calls:
        out = layer.forward(_tensor(x, device))
    return {
        "out": _described(out),
        "calls": [{"kind": kind,
                   "gamma_is_weight": bound.get("gamma") is layer.weight,
                   "beta_is_bias": bound.get("beta") is layer.bias,
                   "gamma_is_bias": bound.get("gamma") is layer.bias,
                   "epsilon": bound.get("epsilon") if isinstance(bound.get("epsilon"), (int, float)) else None}
                  for kind, bound in calls],
    }


def _from_scratch(learner_module, device_name, xs, gamma, beta, eps):
    """layer_norm_from_scratch traced into one graph (symbolic batch) and run on each of `xs`."""
    _prepare()
    key = ("from_scratch", device_name, eps)
    if key not in _CHILD:
        from max.dtype import DType
        from max.experimental.nn import Module
        from max.experimental.tensor import Tensor
        from max.graph import TensorType

        function = getattr(learner_module, "layer_norm_from_scratch", None)
        if not callable(function):
            return {"missing": "layer_norm_from_scratch"}
        device = _device(device_name)
        returned = []

        class FromScratch(Module):
            def __init__(self):
                self.gamma = _tensor(gamma, device)
                self.beta = _tensor(beta, device)

            def forward(self, x):
                out = function(x, self.gamma, self.beta, eps)
                if not isinstance(out, Tensor):
                    returned.append(_described(out)[1])
                    raise TypeError(f"layer_norm_from_scratch returned a {returned[-1]}")
                return out

        with _spy_on_layer_norm(learner_module) as calls:
            try:
                compiled = FromScratch().compile(TensorType(DType.float32, ["batch", DIM], device=device))
            except Exception:
                if returned:  # MAX may wrap what forward raised; the type is what matters
                    return {"returned": returned[-1]}
                raise
        _CHILD[key] = (compiled, [kind for kind, _ in calls], device)
    compiled, calls, device = _CHILD[key]
    if calls:
        return {"calls": calls}
    return {"outs": [_described(compiled(_tensor(x, device))) for x in xs]}


def _compiled(learner_module, device_name, xs):
    """compile_layer_norm(DIM, device=...) once, run on each of `xs`, beside the eager module."""
    _prepare()
    key = ("compiled", device_name)
    device = _device(device_name)
    if key not in _CHILD:
        compile_layer_norm = getattr(learner_module, "compile_layer_norm", None)
        if not callable(compile_layer_norm):
            return {"missing": "compile_layer_norm"}
        with _creating_on(device):
            _CHILD[key] = compile_layer_norm(DIM, device=device)
    compiled = _CHILD[key]
    if not callable(compiled):
        return {"returned": type(compiled).__name__}
    layer, _ = _new_layer(learner_module, device_name)
    results = []
    for x in xs:
        try:
            out = compiled(_tensor(x, device))
        except Exception as error:  # a static batch size refuses the others; say which
            results.append({"error": f"{type(error).__name__}: {error}"[:300], "batch": len(x)})
            continue
        outputs = out if isinstance(out, (list, tuple)) else [out]
        results.append({"compiled": _described(outputs[0]), "eager": _described(layer(_tensor(x, device)))})
    return {"results": results}


# == the judge's side ============================================================================
def _device_option(options) -> str:
    return getattr(options, "device", None) or "auto"


def _probe(learner, function, *args, during: str, **kwargs):
    try:
        reply = learner.probe(function, _device_option(learner.options), *args, during=during, **kwargs)
    except LearnerError as error:
        if error.exc_type == "NoAccelerator":
            raise Fail("--device gpu was asked for, but MAX sees no accelerator here: "
                       "use --device cpu (or auto).") from None
        raise
    if isinstance(reply, dict) and "class_problem" in reply:
        raise Fail(_class_hint(reply["class_problem"]))
    if isinstance(reply, dict) and "missing" in reply:
        raise Fail(f"Your file defines no `{reply['missing']}` function.")
    return reply


def _class_hint(problem: str) -> str:
    if problem == "missing":
        return "Your file defines no `LayerNorm` class."
    if problem == "no forward":
        return "LayerNorm has no forward(). " + MODULE_HINT
    if problem.startswith("not a Module"):
        return (f"LayerNorm is {problem}: subclass Module from max.experimental.nn "
                "(class LayerNorm(Module)), so MAX can find its parameters and compile it.")
    return f"`LayerNorm` is {problem}; it must be a class."


def _tensor_output(described, name: str, shape) -> np.ndarray:
    if described[0] != "tensor":
        kind = described[1]
        if kind == "NoneType":
            raise Fail(f"`{name}` returned None: a placeholder is still there, or a `return` is missing.")
        raise Fail(f"`{name}` returned a {kind}; it must return a max.experimental.tensor.Tensor "
                   "(stay in MAX: no NumPy or torch inside).")
    _, array, out_shape, dtype = described
    if tuple(out_shape) != tuple(shape):
        raise Fail(f"`{name}` returned shape {tuple(out_shape)} for an input of shape {tuple(shape)}; "
                   "LayerNorm keeps the shape.")
    if dtype != "float32":
        raise Fail(f"`{name}` returned {dtype} for a float32 input; keep the input's dtype.")
    return expect_array(array, name, shape=shape)


def _parameter(report: dict, name: str) -> np.ndarray:
    """The fresh module's `weight` or `bias` as an array, or Fail naming what it is instead."""
    value = report[name]
    role = "gamma: Tensor.ones([dim])" if name == "weight" else "beta: Tensor.zeros([dim])"
    if value[0] == "missing":
        raise Fail(f"LayerNorm(dim) has no `self.{name}`; create it in __init__ ({role}).")
    if value[0] == "other":
        if value[1] == "NoneType":
            raise Fail(f"`self.{name}` is still None: replace the placeholder with {role.split(': ')[1]}.")
        raise Fail(f"`self.{name}` is a {value[1]}; it must be a MAX Tensor ({role}), so that MAX "
                   "tracks it as a parameter and can compile the module.")
    _, array, shape, dtype = value
    if tuple(shape) != (DIM,):
        extra = (" Use Tensor.ones([dim]) / Tensor.zeros([dim]), not [dim, 1]: the parameters are 1-D, "
                 "one value per feature." if tuple(shape) == (DIM, 1) else "")
        raise Fail(f"LayerNorm({DIM}).{name} has shape {list(shape)}, expected [{DIM}] ([dim]).{extra}")
    if dtype != "float32":
        raise Fail(f"LayerNorm({DIM}).{name} is {dtype}, expected float32 (the default dtype for tensors on CPU).")
    return array


def rows_with_small_variance(seed: int, rows: int) -> np.ndarray:
    """(rows, DIM) float32 whose variances span 1e-3..4, so eps=0.5 changes the output a lot."""
    rng = np.random.default_rng(seed)
    spread = np.geomspace(0.03, 2.0, rows)[:, None]
    return (rng.normal(size=(rows, DIM)) * spread + rng.normal(size=(rows, 1))).astype(np.float32)


def random_parameters(seed: int):
    rng = np.random.default_rng(seed)
    gamma = (rng.uniform(0.5, 2.0, DIM) * rng.choice([-1.0, 1.0], DIM)).astype(np.float32)
    return gamma, rng.normal(size=DIM).astype(np.float32)


def forward_mistakes(x, gamma, beta, eps, default_eps=1e-5) -> list[Mistake]:
    """What the classic wrong modules output, each with the hint that names it."""
    ones, zeros = np.ones(DIM), np.zeros(DIM)
    return [
        Mistake("The output is the one for eps=1e-5: epsilon looks hard-coded. "
                "Pass epsilon=self.eps to F.layer_norm", lambda: layernorm(x, gamma, beta, default_eps)),
        Mistake("gamma and beta look swapped: pass gamma=self.weight, beta=self.bias",
                lambda: layernorm(x, beta, gamma, eps)),
        Mistake("gamma and beta are not applied: pass gamma=self.weight and beta=self.bias to F.layer_norm "
                "(not fresh ones and zeros)", lambda: layernorm(x, ones, zeros, eps)),
        Mistake("beta is not applied: pass beta=self.bias", lambda: layernorm(x, gamma, zeros, eps)),
        Mistake("gamma is not applied: pass gamma=self.weight", lambda: layernorm(x, ones, beta, eps)),
    ]


def scratch_mistakes(x, gamma, beta, eps) -> list[Mistake]:
    """Outputs of the classic wrong compositions (2-D x), each with the hint that names it."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    return [
        Mistake("The variance looks unbiased (divided by dim - 1); LayerNorm uses the biased variance: "
                "F.mean((x - mean) * (x - mean), axis=-1) divides by dim",
                lambda: (x - mean) / np.sqrt(var * DIM / (DIM - 1) + eps) * gamma + beta),
        Mistake("eps looks outside the square root: use F.rsqrt(var + eps), not 1 / (F.sqrt(var) + eps)",
                lambda: (x - mean) / (np.sqrt(var) + eps) * gamma + beta),
        Mistake("Normalised over the wrong axis: take the mean and variance over the last axis "
                "(axis=-1, the features), not over the batch (axis=0)",
                lambda: layernorm(x, gamma, beta, eps, axes=(0,))),
        Mistake("Normalised over the whole tensor: take the mean and variance per row, with axis=-1",
                lambda: layernorm(x, gamma, beta, eps, axes=(0, 1))),
        Mistake("gamma and beta are not applied: return xhat * gamma + beta", lambda: xhat),
        Mistake("gamma and beta are swapped: gamma scales, beta shifts", lambda: xhat * beta + gamma),
        Mistake("beta is added before scaling by gamma: compute xhat * gamma + beta", lambda: (xhat + beta) * gamma),
        Mistake("Divided by the variance instead of the standard deviation: use F.rsqrt(var + eps)",
                lambda: (x - mean) / (var + eps) * gamma + beta),
        Mistake("The mean is not subtracted: xhat = (x - mean) * F.rsqrt(var + eps)",
                lambda: x / np.sqrt(var + eps) * gamma + beta),
        Mistake("Multiplied by the standard deviation instead of dividing: use F.rsqrt(var + eps) "
                "(1/sqrt), or divide by F.sqrt(var + eps)", lambda: (x - mean) * np.sqrt(var + eps) * gamma + beta),
        Mistake("The output is the one for eps=1e-5: use the `eps` argument, not a constant",
                lambda: layernorm(x, gamma, beta, 1e-5)),
    ]


# -- the seed's twelve lines ------------------------------------------------------------------
@checklist.check("functional module is correctly imported as F from max.experimental")
def functional_imported(learner):
    found = learner.probe(_imports, during="reading your imports")
    if found["functional"]:
        names = found["functional"]
        return "as F" if "F" in names else f"as {names[0]}; the tutorial calls it F"
    if found["layer_norm"]:
        return f"layer_norm imported by name as {found['layer_norm'][0]}"
    raise Fail("max.experimental.functional is not imported: add `from max.experimental import functional as F` "
               "(F.layer_norm, F.mean and F.rsqrt come from it).")


@checklist.check("Tensor is correctly imported from max.experimental.tensor")
def tensor_imported(learner):
    found = learner.probe(_imports, during="reading your imports")
    if found["tensor"]:
        return "" if "Tensor" in found["tensor"] else f"as {found['tensor'][0]}"
    if found["tensor_module"]:
        return f"through the module {found['tensor_module'][0]}"
    raise Fail("Tensor is not imported: add `from max.experimental.tensor import Tensor` "
               "(Tensor.ones and Tensor.zeros create the parameters).")


@checklist.check("LayerNorm class exists (a max.experimental.nn Module with a forward method)")
def class_exists(learner):
    problem = learner.probe(_class_report, during="looking at your LayerNorm class")
    if not problem.startswith("ok"):
        raise Fail(_class_hint(problem))
    return problem[2:].strip()


@checklist.check("Tensor.ones is used for weight initialization (weight starts as all ones)", timeout=EAGER_TIMEOUT)
def weight_ones(learner):
    report = _probe(learner, _fresh, during="creating LayerNorm(16)")
    weight = _parameter(report, "weight")
    if np.all(weight == 0):
        raise Fail("The weight starts as zeros: ones and zeros look swapped. gamma = Tensor.ones([dim]) "
                   "(scale by 1), beta = Tensor.zeros([dim]) (shift by 0).")
    if not np.all(weight == 1):
        raise Fail(f"The weight starts as {np.round(weight[:4], 3)}..., expected all ones: Tensor.ones([dim]), so a "
                   "fresh LayerNorm only normalises.")
    return ""


@checklist.check("Tensor.zeros is used for bias initialization (bias starts as all zeros)", timeout=EAGER_TIMEOUT)
def bias_zeros(learner):
    report = _probe(learner, _fresh, during="creating LayerNorm(16)")
    bias = _parameter(report, "bias")
    if np.all(bias == 1):
        raise Fail("The bias starts as ones: ones and zeros look swapped. beta = Tensor.zeros([dim]) "
                   "(shift by 0), gamma = Tensor.ones([dim]).")
    if not np.all(bias == 0):
        raise Fail(f"The bias starts as {np.round(bias[:4], 3)}..., expected all zeros: Tensor.zeros([dim]).")
    return ""


def _forward_report(learner, x, gamma=None, beta=None, eps=None):
    return _probe(learner, _forward, x, gamma, beta, eps, during="calling LayerNorm.forward")


@checklist.check("F.layer_norm is used (forward calls it)", timeout=EAGER_TIMEOUT)
def layer_norm_called(learner):
    x = rows_with_small_variance(seed=1, rows=4)
    report = _forward_report(learner, x)
    if not report["calls"]:
        raise Fail("forward did not call F.layer_norm: return F.layer_norm(x, gamma=self.weight, "
                   "beta=self.bias, epsilon=self.eps) (the from-scratch version belongs in "
                   "layer_norm_from_scratch).")
    if all(call["kind"] == "ops" for call in report["calls"]):
        raise Fail("forward calls max.graph.ops.layer_norm, the graph-building op; use "
                   "max.experimental.functional's F.layer_norm, which works on eager Tensors too.")
    return f"{len(report['calls'])} call(s)"


@checklist.check("F.layer_norm is used with correct parameters (gamma, beta, epsilon)", timeout=EAGER_TIMEOUT)
def layer_norm_parameters(learner):
    x = rows_with_small_variance(seed=2, rows=6)
    gamma, beta = random_parameters(seed=3)
    report = _forward_report(learner, x, gamma, beta, 0.5)
    y = _tensor_output(report["out"], "forward", x.shape)
    calls = [call for call in report["calls"] if call["kind"] == "F"]
    if calls:
        call = calls[-1]
        if call["gamma_is_bias"]:
            raise Fail("gamma and beta are swapped: pass gamma=self.weight, beta=self.bias.")
        if call["epsilon"] is not None and call["epsilon"] != 0.5:
            raise Fail(f"LayerNorm({DIM}, eps=0.5) passed epsilon={call['epsilon']!r} to F.layer_norm: "
                       "epsilon looks hard-coded. Pass epsilon=self.eps.")
    return expect_close(y, layernorm(x, gamma, beta, 0.5), name="forward", atol=1e-4, rtol=1e-4,
                        mistakes=forward_mistakes(x, gamma, beta, 0.5))


@checklist.check("All placeholder 'None' values have been replaced", timeout=EAGER_TIMEOUT)
def no_placeholders(learner):
    report = _probe(learner, _fresh, during="creating LayerNorm(16)")
    for name in ("weight", "bias"):
        if report[name][:2] == ("other", "NoneType"):
            raise Fail(f"`self.{name}` is still None: replace the placeholder.")
    if report["eps"] is None:
        raise Fail("`self.eps` is still None: store the eps argument (self.eps = eps).")
    x = rows_with_small_variance(seed=4, rows=3)
    _tensor_output(_forward_report(learner, x)["out"], "forward", x.shape)
    return ""


@checklist.check("LayerNorm class can be instantiated", timeout=EAGER_TIMEOUT)
def instantiates(learner):
    _probe(learner, _fresh, during="creating LayerNorm(16)")
    _probe(learner, _fresh, eps=1e-3, during="creating LayerNorm(16, eps=1e-3)")
    return "LayerNorm(16) and LayerNorm(16, eps=1e-3)"


@checklist.check("LayerNorm.weight is initialized (a float32 Tensor of shape [dim], a module parameter)",
                 timeout=EAGER_TIMEOUT)
def weight_initialized(learner):
    report = _probe(learner, _fresh, during="creating LayerNorm(16)")
    _parameter(report, "weight")
    if "weight" not in report["parameters"]:
        raise Fail("`weight` is not among the module's parameters: assign it directly as self.weight in __init__.")
    return f"shape [{DIM}], float32"


@checklist.check("LayerNorm.bias is initialized (a float32 Tensor of shape [dim], a module parameter)",
                 timeout=EAGER_TIMEOUT)
def bias_initialized(learner):
    report = _probe(learner, _fresh, during="creating LayerNorm(16)")
    _parameter(report, "bias")
    if "bias" not in report["parameters"]:
        raise Fail("`bias` is not among the module's parameters: assign it directly as self.bias in __init__.")
    return f"shape [{DIM}], float32"


@checklist.check("LayerNorm.eps has correct default value: 1e-05", timeout=EAGER_TIMEOUT)
def eps_default(learner):
    report = _probe(learner, _fresh, during="creating LayerNorm(16)")
    eps = report["eps"]
    if eps == "missing":
        raise Fail("LayerNorm(dim) has no `self.eps`: store the eps argument in __init__ (self.eps = eps).")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        raise Fail(f"`self.eps` is {eps!r}; it must be the float eps (default 1e-5).")
    if eps != 1e-5:
        raise Fail(f"LayerNorm(dim).eps is {eps!r}; the default must be 1e-5 (PyTorch's and GPT-2's): "
                   "def __init__(self, dim, *, eps=1e-5).")
    return "LayerNorm(dim).eps == 1e-05"


# -- beyond the seed ----------------------------------------------------------------------------
@checklist.check("forward handles 2-D (batch, dim) and 3-D (batch, seq, dim) inputs, over the last axis",
                 timeout=EAGER_TIMEOUT)
def two_and_three_d(learner):
    gamma, beta = random_parameters(seed=6)
    x2 = rows_with_small_variance(seed=7, rows=5) * 10 + 100  # a large mean: cancellation shows
    y2 = _tensor_output(_forward_report(learner, x2, gamma, beta)["out"], "forward", x2.shape)
    expect_close(y2, layernorm(x2, gamma, beta, 1e-5), name="forward (2-D)", atol=2e-3, rtol=1e-3,
                 mistakes=forward_mistakes(x2, gamma, beta, 1e-5))
    # The default eps must reach the kernel: rows with a variance near 1e-5 show it.
    tiny = (np.random.default_rng(5).normal(size=(4, DIM)) * 3e-3).astype(np.float32)
    y_tiny = _tensor_output(_forward_report(learner, tiny)["out"], "forward", tiny.shape)
    ones, zeros = np.ones(DIM), np.zeros(DIM)
    expect_close(y_tiny, layernorm(tiny, ones, zeros, 1e-5), name="forward (variance near eps)", atol=2e-3,
                 mistakes=[Mistake(f"With the default eps, forward does not use 1e-5 (it matches eps={wrong:g}): "
                                   "pass epsilon=self.eps", lambda wrong=wrong: layernorm(tiny, ones, zeros, wrong))
                           for wrong in (1e-6, 1e-12, 1e-3)])
    x3 = rows_with_small_variance(seed=8, rows=6).reshape(2, 3, DIM)
    y3 = _tensor_output(_forward_report(learner, x3, gamma, beta)["out"], "forward", x3.shape)
    return expect_close(y3, layernorm(x3, gamma, beta, 1e-5), name="forward (3-D)", atol=1e-4, rtol=1e-4, mistakes=[
        Mistake("A 3-D input is normalised over (seq, dim) together: F.layer_norm normalises over the "
                "last axis only; do not reshape x", lambda: layernorm(x3, gamma, beta, 1e-5, axes=(1, 2))),
        *forward_mistakes(x3, gamma, beta, 1e-5)])


@checklist.check("layer_norm_from_scratch (F.mean, F.rsqrt, ...) matches the float64 oracle and forward, "
                 "without F.layer_norm", timeout=GRAPH_TIMEOUT)
def from_scratch(learner):
    gamma, beta = random_parameters(seed=9)
    eps = 0.1  # large enough that eps inside or outside the square root differ visibly
    xs = [rows_with_small_variance(seed=10, rows=6), rows_with_small_variance(seed=11, rows=3) + 50]
    report = _probe(learner, _from_scratch, xs, gamma, beta, eps, during="compiling layer_norm_from_scratch")
    if "returned" in report:
        if report["returned"] == "NoneType":
            raise Fail("layer_norm_from_scratch returned None: a placeholder is still there, or a `return` is missing.")
        raise Fail(f"layer_norm_from_scratch returned a {report['returned']}; it must return a MAX Tensor "
                   "built from MAX ops (F.mean, F.rsqrt, +, -, *).")
    if "calls" in report:
        raise Fail("layer_norm_from_scratch calls layer_norm: build it from MAX primitives instead "
                   "(F.mean over axis=-1, the mean of the centred square, F.rsqrt, then scale and shift).")
    details = []
    for index, (x, described) in enumerate(zip(xs, report["outs"], strict=True)):
        y = _tensor_output(described, "layer_norm_from_scratch", x.shape)
        try:
            details.append(expect_close(y, layernorm(x, gamma, beta, eps), name="layer_norm_from_scratch",
                                        atol=2e-4, rtol=2e-4, mistakes=scratch_mistakes(x, gamma, beta, eps)))
        except Fail as failure:
            if index == 1 and "differs from the float64 oracle" in str(failure):
                raise Fail("Right for rows near 0, wrong for rows around 50: E[x²] - E[x]² cancels in "
                           "float32. Centre first, then average the squares: F.mean((x - mean) * (x - mean), "
                           f"axis=-1). ({failure})") from None
            raise
    # The fused kernel and the composition must agree with each other, not only with the oracle.
    forward = _forward_report(learner, xs[0], gamma, beta, eps)
    y_forward = _tensor_output(forward["out"], "forward", xs[0].shape)
    y_scratch = report["outs"][0][1]
    gap = float(np.max(np.abs(y_forward.astype(np.float64) - y_scratch)))
    if gap > 5e-4:
        raise Fail(f"layer_norm_from_scratch matches the oracle, but forward differs from it by {gap:.2g} on the "
                   "same input and parameters: the problem is in forward (see the checks above).")
    return f"{details[0]}; {gap:.1e} from forward"


BATCH_SIZES = (1, 5, 32)


@checklist.check("compile_layer_norm: one graph with a symbolic batch runs batch sizes 1, 5 and 32 "
                 "and matches eager", timeout=GRAPH_TIMEOUT)
def compiled_graph(learner):
    xs = [rows_with_small_variance(seed=20 + n, rows=n) for n in BATCH_SIZES]
    with _compile_hints():
        report = _probe(learner, _compiled, xs, during="compiling with compile_layer_norm")
    if "returned" in report:
        if report["returned"] == "NoneType":
            raise Fail("compile_layer_norm returned None: a placeholder is still there, or a `return` is missing.")
        raise Fail(f"compile_layer_norm returned a {report['returned']}; return what Module.compile returns.")
    worst = 0.0
    for x, result in zip(xs, report["results"], strict=True):
        if "error" in result:
            rows = "1 row" if result["batch"] == 1 else f"{result['batch']} rows"
            raise Fail(f"The compiled graph refused a batch of {rows}: it was compiled for one batch size. "
                       "Compile with a symbolic batch dim, TensorType(DType.float32, ['batch', dim], device=...), "
                       f"so one graph serves every batch size. (MAX said: {result['error'][:200]})")
        compiled = _tensor_output(result["compiled"], "the compiled graph", x.shape)
        eager = _tensor_output(result["eager"], "forward", x.shape)
        expect_close(compiled, layernorm(x, np.ones(DIM), np.zeros(DIM), 1e-5), name="the compiled graph",
                     atol=1e-4, rtol=1e-4)
        worst = max(worst, float(np.max(np.abs(compiled.astype(np.float64) - eager))))
    if worst > 1e-4:
        raise Fail(f"The compiled graph and eager forward differ by {worst:.2g}.")
    return f"max gap to eager {worst:.1e}"


@contextmanager
def _compile_hints():
    try:
        yield
    except LearnerError as error:
        text = str(error)
        if "does not match" in text and ("Gamma" in text or "Beta" in text or "dimension" in text):
            raise Fail(f"The compiled graph's input does not end in dim: the TensorType must be "
                       f"[..., dim] ({text[:160]}).") from None
        raise
