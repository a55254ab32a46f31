"""The learner's side of the MAX steps (03 and 06): MAX made ready in the learner's process, and the device,
tensor and dtype adapters their probes share.

Every function here runs in the learner's process (called through `learner.probe`, or by a step's
probes); MAX is imported here only, lazily, never in the judge. Tensors returned cross the wire as
`TensorRecord`s; a `Fail` raised here arrives as that hint.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from tests.check.engine import Fail

MEMO: dict = {}  # per learner process: compiled graphs, kept between checks (compiling is the slow part)


class _InterpretFirst:
    """Runs eager MAX ops in MAX's interpreter and compiles only the graphs it refuses.

    MAX's default eager executor also compiles every eager graph in background processes,
    minutes of CPU on a small machine for results the checks never wait for.
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


_READY: list = []


def ready() -> None:
    """Once per process: eager ops interpreted where MAX can, and no SIGINT handler per realisation."""
    if _READY:
        return
    import signal

    from max.experimental import executor

    # asyncio.run (inside every eager realisation) inspects the SIGINT handler it installs; under
    # Python 3.11 that formats the pending task's repr, which realises and prints the tensors it
    # holds: dozens of extra eager ops. With SIG_DFL it installs nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    executor.set_default_executor(_InterpretFirst())
    _READY.append(True)


def add_device_option(parser, help: str) -> None:
    """The MAX steps' --device cpu|gpu|auto (read by `device_for`)."""
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help=help)


def device_for(name: str):
    """The MAX device for --device cpu|gpu|auto; Fail when a GPU is asked for and MAX sees none."""
    from max.driver import CPU, Accelerator, accelerator_count

    if name == "cpu":
        return CPU()
    if accelerator_count():
        return Accelerator()
    if name == "gpu":
        raise Fail("--device gpu was asked for, but MAX sees no accelerator here: use --device cpu (or auto)")
    return CPU()


def to_tensor(array, device=None, dtype=np.float32, cast=None):
    """A MAX Tensor holding `array` on `device` (default: the CPU), cast to the MAX DType `cast` if given."""
    from max.dtype import DType
    from max.experimental.tensor import Tensor

    tensor = Tensor.from_dlpack(np.ascontiguousarray(array, dtype=dtype))
    tensor = tensor if device is None else tensor.to(device)
    return tensor if cast is None or cast == DType.float32 else tensor.cast(cast)


def dtype_for(device, name: str = "auto"):
    """The MAX DType of a --dtype option (float32, bfloat16); auto is MAX's default on `device` (float32 on a CPU,
    bfloat16 on an accelerator), what a LayerNorm built there without a dtype gets."""
    from max.dtype import DType
    from max.experimental.tensor import defaults

    return defaults(device=device)[0] if name == "auto" else getattr(DType, name)


@contextmanager
def creating_on(device, dtype=None):
    """Parameters made by Tensor.ones/zeros land on `device`, as `dtype` (default float32)."""
    from max.dtype import DType
    from max.experimental.tensor import default_device, default_dtype

    with default_device(device), default_dtype(dtype or DType.float32):
        yield
