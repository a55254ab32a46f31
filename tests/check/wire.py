"""What crosses the boundary between the learner's process and the judge's.

The worker (learner side) sends back only plain data: numbers, strings, containers, NumPy
arrays, and `TensorRecord`s (a torch or MAX tensor copied to the host). Anything else becomes a
`Foreign` marker naming its type, so a check can say "returned a list, expected a tensor". The
judge unpickles with an allowlist, so nothing the learner's code builds can run code in the
judging process.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
from dataclasses import dataclass

import numpy as np

MAX_FRAME_BYTES = 1 << 30  # a reply larger than this is treated as garbage
HEADER = struct.Struct("!Q")
# The page the worker shares with the judge: (compiles under way, compiles begun), see worker.compiling
COMPILE_METER = struct.Struct("=qq")
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


@dataclass(frozen=True)
class Foreign:
    """A value the learner's code produced that is not plain data."""

    type_name: str
    text: str

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


@dataclass(frozen=True)
class TensorRecord:
    """A torch or MAX tensor as plain data: its values on the host and what it said about itself."""

    framework: str  # "torch" or "max"
    values: np.ndarray  # bfloat16 arrives widened to float32, which holds it exactly
    dtype: str  # the tensor's own dtype name: "float32", "bfloat16", ...
    shape: tuple
    device: str  # "cpu", "cuda:0", "cpu:0", "gpu:0"

    @property
    def type_name(self) -> str:
        return "torch.Tensor" if self.framework == "torch" else "max.experimental.tensor.Tensor"


def _tensor_record(value) -> TensorRecord | None:
    """The record of a torch or MAX tensor (their modules are only looked up, never imported here)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        host = value.detach().to("cpu")
        values = (host.float() if host.dtype == torch.bfloat16 else host).numpy()
        return TensorRecord(
            "torch",
            np.array(values, copy=True),
            str(value.dtype).removeprefix("torch."),
            tuple(value.shape),
            str(value.device),
        )
    tensor_module = sys.modules.get("max.experimental.tensor")
    if tensor_module is not None and isinstance(value, tensor_module.Tensor):
        from max.driver import CPU
        from max.dtype import DType

        host = value if value.device.is_host else value.to(CPU())
        if value.dtype == DType.bfloat16:
            host = host.cast(DType.float32)
        return TensorRecord(
            "max",
            np.array(host.to_numpy(), copy=True),
            value.dtype.name.lower(),
            tuple(int(d) for d in value.shape),
            f"{value.device.label}:{value.device.id}",
        )
    return None


def describe_type(value) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def to_plain(value, depth: int = 0):
    """Copy `value` into plain data, marking whatever is not (learner side)."""
    if depth > 20:
        return Foreign(describe_type(value), "nested too deeply")
    if type(value) in _SCALARS:
        return value
    if type(value) is np.ndarray:
        if value.dtype.hasobject:
            return Foreign("numpy.ndarray[object]", _short_repr(value))
        return np.array(value, copy=True)
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return value.copy()
    if type(value) in (tuple, list):
        return type(value)(to_plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return {str(key): to_plain(item, depth + 1) for key, item in value.items()}
    record = _tensor_record(value)
    if record is not None:
        return record
    return Foreign(describe_type(value), _short_repr(value))


def _short_repr(value) -> str:
    try:
        text = repr(value)
    except BaseException:  # the learner's __repr__ may itself be broken
        text = "<repr failed>"
    return text if len(text) <= 200 else text[:197] + "..."


_ALLOWED = {
    ("builtins", "complex"),
    ("builtins", "frozenset"),
    ("builtins", "set"),
    ("tests.check.wire", "Foreign"),
    ("tests.check.wire", "TensorRecord"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _JudgeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"reply contains a {module}.{name}, which is not plain data")


def loads_plain(payload: bytes):
    return _JudgeUnpickler(io.BytesIO(payload)).load()


def write_frame(fd: int, obj) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, size: int) -> bytes:
    """Blocking read of exactly `size` bytes (learner side: commands from the judge)."""
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("judge closed the command pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int):
    (size,) = HEADER.unpack(read_exact(fd, HEADER.size))
    return pickle.loads(read_exact(fd, size))
