"""Step 06's learner side: the learner's Mojo kernel, as a MAX custom op, declared, compiled and timed.

Every function here runs in the learner's process (called through `learner.probe`); MAX is imported
here only, lazily, never in the judge (`judging`). Tensors returned cross the wire as `TensorRecord`s;
a `Fail` raised here arrives as that hint.
"""

from __future__ import annotations

import numpy as np

from tests.check.engine import Fail
from tests.check.kit.max_side import MEMO, device_for, ready, to_tensor

FAST = "fast"  # the kernel the learner writes; "naive" is given


class GraphSpy:
    """Counts graph ops staged while the learner's code runs: the built-in LayerNorm and custom ops."""

    def __init__(self):
        self.builtin, self.custom = 0, set()

    def __enter__(self):
        from max._core.dialects import mo
        from max.graph import Graph, ops

        self._saved = Graph._add_op_generated, ops.custom
        add, custom = self._saved

        def add_op(graph, op_type, *args, **kwargs):
            self.builtin += op_type is mo.ReduceLayerNormOp
            return add(graph, op_type, *args, **kwargs)

        def spy_custom(name, *args, **kwargs):
            self.custom.add(str(name))
            return custom(name, *args, **kwargs)

        Graph._add_op_generated, ops.custom = add_op, spy_custom
        return self

    def __exit__(self, *exc):
        from max.graph import Graph, ops

        Graph._add_op_generated, ops.custom = self._saved

    def record(self) -> dict:
        return {"builtin": self.builtin, "custom": sorted(self.custom)}


def declare(module, eps):
    """Declares the fast op, which compiles the package; a compiler error comes back as its text."""
    from mojo.paths import MojoCompilationError

    ready()
    try:
        module.layer_norm_op(FAST, eps)
    except MojoCompilationError as error:
        return error.stderr or str(error)
    return None


def on_gpu(device_name):
    """The accelerator of --device (gpu or auto), or Fail: the GPU checks never fall back to the CPU."""
    ready()
    device = device_for(device_name)
    if device.is_host:
        raise Fail("MAX sees no GPU in your code's process, so the GPU checks cannot run here.")
    return device


def eager_on_gpu(module, device_name, x, gamma, beta, eps):
    """mojo_layer_norm on eager tensors on the GPU; the output comes back with the device it is on."""
    device = on_gpu(device_name)
    return module.mojo_layer_norm(*(to_tensor(a, device) for a in (x, gamma, beta)), eps=eps, kernel=FAST)


def compiled_kernel_on_gpu(module, device_name, dim, gamma, beta, eps, xs):
    """compile_mojo_layer_norm(dim, device=the GPU) once, run on each of `xs` (moved to the GPU)."""
    device = on_gpu(device_name)
    key = ("learner", dim, eps, "gpu")
    if key not in MEMO:
        MEMO[key] = module.compile_mojo_layer_norm(dim, kernel=FAST, eps=eps, weight=gamma, bias=beta, device=device)
    return [MEMO[key](to_tensor(x, device)) for x in xs]


def learner_graph(module, dim, gamma, beta, eps):
    """compile_mojo_layer_norm(dim) with these parameters, compiled once per process."""
    ready()
    key = ("learner", dim, eps)
    if key not in MEMO:
        MEMO[key] = module.compile_mojo_layer_norm(dim, kernel=FAST, eps=eps, weight=gamma, bias=beta)
    return MEMO[key]


def compiled_kernel(module, dim, gamma, beta, eps, xs):
    """The learner's compiled graph on several batch sizes, and what was staged while it was built and ran."""
    with GraphSpy() as spy:
        run = learner_graph(module, dim, gamma, beta, eps)
        outputs = [run(to_tensor(x)) for x in xs]
    return outputs, spy.record()


def builtin_graph(dim):
    """MAX's own LayerNorm (F.layer_norm) in a compiled graph with a symbolic batch: the yardstick."""
    from max.driver import CPU
    from max.dtype import DType
    from max.experimental import functional as F
    from max.experimental.nn import Module
    from max.experimental.tensor import Tensor, TensorType
    from max.graph import DeviceRef

    class BuiltinLayerNorm(Module):
        def __init__(self):
            super().__init__()
            self.weight = Tensor.ones([dim], dtype=DType.float32, device=CPU())
            self.bias = Tensor.zeros([dim], dtype=DType.float32, device=CPU())

        def forward(self, x):
            return F.layer_norm(x, gamma=self.weight, beta=self.bias, epsilon=1e-5)

    return BuiltinLayerNorm().compile(TensorType(DType.float32, ["batch", dim], DeviceRef.CPU()))


def speed(module, rows, dim, repeats, eps=1e-5):
    """Median seconds per call of the learner's compiled graph (reused when an earlier check compiled it for this
    `dim` and `eps`; the weights do not change the time) and of the built-in's, interleaved."""
    import time

    gamma, beta = np.ones(dim, np.float32), np.zeros(dim, np.float32)
    if ("builtin", dim) not in MEMO:
        MEMO[("builtin", dim)] = builtin_graph(dim)
    graphs = {"yours": learner_graph(module, dim, gamma, beta, eps), "builtin": MEMO[("builtin", dim)]}
    x = to_tensor(np.random.default_rng(0).normal(size=(rows, dim)))
    times = {name: [] for name in graphs}
    for run in graphs.values():  # warm-up: the first calls allocate
        for _ in range(3):
            run(x)
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits both alike
        for name, run in graphs.items():
            start = time.perf_counter()
            run(x)  # on the CPU the call returns when the output is written
            times[name].append(time.perf_counter() - start)
    # spread: (75th - 25th percentile) / median; a quiet machine stays well under 0.5
    return {
        name: {"median": float(np.median(t)), "spread": float(np.subtract(*np.percentile(t, [75, 25])) / np.median(t))}
        for name, t in times.items()
    }
