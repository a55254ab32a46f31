"""Step 06's CPU kernel, run by the checker itself: compiled once per content, called on guarded buffers.

Through MAX, every kernel call is a graph, and a new epsilon or a new edit of the kernel is a new
compile of tens of seconds. Here `kernel_harness.mojo` calls the learner's `LayerNormFast` directly
(as MAX calls it on a CPU), and is built with `mojo build` once per content of the learner's package,
cached under `.checker/kernels/`: every check of a run, the watch's quick and full passes and the
next run reuse the binary, and each call costs milliseconds.

Each call runs in a process of its own on a file both sides map: the inputs with NaN around them (a
read past an input's end shows up as NaN), the output filled with a canary value and surrounded by
more (a write past the output's end, or an element never written, stays visible, whatever the order
the threads ran in). The plain reference loop runs first on the same input, in the same process; the
learner's kernel then has a wall-clock budget derived from its time, so a kernel that never returns is
reported in seconds, and the output it left behind says how far it got.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import mmap
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from tests.check import REPO_ROOT
from tests.check.sandbox import MEMORY_LIMIT

SOURCE = Path(__file__).with_name("kernel_harness.mojo")
CACHE = REPO_ROOT / ".checker" / "kernels"
PACKAGE = "learner_kernels"  # the name the harness imports the learner's package under
PLACEHOLDER = "<package>"  # the learner's folder, in cached compiler output
EPSILONS = (1e-5, 10.0, 0.5)  # compile-time parameters the harness instantiates, in kernel_harness.mojo's order
# The header's int64 slots, as kernel_harness.mojo names them.
(
    ROWS,
    WIDTH,
    EPSILON,
    X_AT,
    GAMMA_AT,
    BETA_AT,
    Y_AT,
    STATUS,
    REFERENCE_NS,
    KERNEL_NS,
    SIMD_WIDTH,
    CALLS,
    DIFFERENT_CALLS,
    FIRST_DIFFERENT_ROW,
) = range(14)
HEADER_BYTES = 128
GUARD = 64  # floats of guard values on each side of every buffer, beyond a whole row's worth
ALIGN = 16  # floats: every buffer starts on a 64-byte boundary, as MAX's do
CANARY = np.float32(-7.0e37)  # no LayerNorm output is anywhere near it
BUILD_SECONDS = 300.0  # wall clock for `mojo build` (times --timeout-scale): about 10 s is usual
START_SECONDS = 20.0  # process start and the reference loop on the checks' small inputs
KERNEL_FLOOR_SECONDS = 2.0  # the learner's kernel gets at least this, or REFERENCE_MULTIPLE x the reference
REFERENCE_MULTIPLE = 200.0  # the reference is a scalar loop: a SIMD kernel needs a fraction of its time
OUTPUT_BYTES = 1 << 20  # what the kernel may print: a print inside a loop would fill the disk
KEEP_BUILDS = 64  # builds kept in CACHE (a quarter of a MB each), the most recently used
RUNNING, RETURNED = 2, 3  # STATUS values


def mojo_binary() -> Path:
    """The `mojo` compiler installed with MAX (beside this Python in a virtual environment)."""
    beside = Path(sys.executable).with_name("mojo")
    found = beside if beside.exists() else shutil.which("mojo")
    if not found:
        raise FileNotFoundError("mojo is not installed here (it comes with MAX: make venv, or pixi install)")
    return Path(found)


def _package_files(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.mojo") if p.is_file())


def build_key(package: Path) -> str:
    """Changes with the learner's package, this harness, the compiler and the machine's architecture."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(f"{importlib.metadata.version('max')} {platform.machine()}".encode())
    for path in _package_files(package):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def _contained():
    """In the child, before it runs: die with the checker, no core file, a cap on what it may print."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_BYTES, OUTPUT_BYTES))


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


@dataclass
class Build:
    """A finished build: the binary, or the compiler's errors (`in_package`: in the learner's files)."""

    binary: Path | None
    errors: str = ""
    in_package: bool = True
    seconds: float = 0.0
    cached: bool = False


class Builder:
    """`mojo build` of the harness against a learner's package, started now, in the background.

    The result is cached by content: a build that already happened (a passing or failing one) is
    returned at once. A build in progress is killed when the checker ends.
    """

    def __init__(self, package: Path, scale: float = 1.0):
        self.package, self.scale = Path(package).resolve(), scale
        self.key = build_key(self.package)
        self.folder = CACHE / self.key
        self.started = time.monotonic()
        self.process: subprocess.Popen | None = None
        self.done = self._cached()
        if self.done is None:
            self._start()

    def _cached(self) -> Build | None:
        if (self.folder / "harness").exists():
            os.utime(self.folder)  # used now: the last to be pruned
            return Build(self.folder / "harness", cached=True)
        errors = self.folder / "errors.txt"
        if errors.exists():
            text = errors.read_text(encoding="utf-8", errors="replace")
            return Build(None, text.replace(PLACEHOLDER, str(self.package)), _in_package(text), cached=True)
        return None

    def _start(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        _prune()
        self.staging = Path(tempfile.mkdtemp(prefix=f"{self.key}-", dir=CACHE))
        source = self.staging / "src" / PACKAGE
        for path in _package_files(self.package):
            target = source / path.relative_to(self.package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        shutil.copyfile(SOURCE, self.staging / "harness.mojo")
        command = [str(mojo_binary()), "build", "-I", str(self.staging / "src"), "harness.mojo", "-o", "harness"]
        self.log = open(self.staging / "compiler.txt", "wb")  # noqa: SIM115 (closed in result())
        self.process = subprocess.Popen(
            command,
            cwd=self.staging,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_contained,
        )

    def result(self) -> Build:
        """Waits for the build (at most BUILD_SECONDS times the scale) and files it in the cache."""
        if self.done is not None:
            return self.done
        try:
            code = self.process.wait(timeout=max(BUILD_SECONDS * self.scale - (time.monotonic() - self.started), 1))
        except subprocess.TimeoutExpired:
            _kill(self.process)
            self.log.close()
            shutil.rmtree(self.staging, ignore_errors=True)
            limit = BUILD_SECONDS * self.scale
            self.done = Build(None, f"the Mojo compiler did not finish within {limit:.0f} s", in_package=True)
            return self.done
        self.log.close()
        seconds = time.monotonic() - self.started
        text = (self.staging / "compiler.txt").read_text(encoding="utf-8", errors="replace")
        if code == 0 and (self.staging / "harness").exists():
            kept = {"harness"}
        else:
            text = text.replace(f"{self.staging}/src/{PACKAGE}", PLACEHOLDER).replace(f"{self.staging}/", "")
            (self.staging / "errors.txt").write_text(text, encoding="utf-8")
            kept = {"errors.txt"}
        for path in self.staging.iterdir():
            if path.name not in kept:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        try:
            self.staging.rename(self.folder)  # atomic: a concurrent build of the same content may have won
        except OSError:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.done = self._cached() or Build(None, "the build left neither a binary nor errors")
        self.done.seconds, self.done.cached = seconds, False
        return self.done

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _kill(self.process)
            self.log.close()
            shutil.rmtree(self.staging, ignore_errors=True)


def _prune() -> None:
    """Leaves the KEEP_BUILDS most recently used builds, and no build abandoned over an hour ago."""
    entries = sorted(CACHE.iterdir(), key=lambda path: path.stat().st_mtime, reverse=True)
    finished = [path for path in entries if "-" not in path.name]
    abandoned = [path for path in entries if "-" in path.name and time.time() - path.stat().st_mtime > 3600]
    for path in finished[KEEP_BUILDS:] + abandoned:
        shutil.rmtree(path, ignore_errors=True)


def _in_package(errors: str) -> bool:
    """Whether the compiler's errors are in the learner's files (else in the harness's call of their kernel)."""
    return PLACEHOLDER + "/" in errors or not re.search(r"harness\.mojo:\d+:\d+: error", errors)


# -- one call of the kernel ---------------------------------------------------------------------------------
@dataclass
class Layout:
    """Where each buffer lies in the shared file, in floats after the header, with guards on both sides."""

    rows: int
    width: int
    starts: dict = field(default_factory=dict)  # name -> first float of the buffer itself
    floats: int = 0
    guards: dict = field(default_factory=dict)  # name -> floats of guard values on each side
    wide: bool = False  # gamma's and beta's guards as large as x (for the small input of the memory check)

    def __post_init__(self):
        # A row read or stored one row off lands whole in a guard; `wide`: gamma and beta read at row * width + col,
        # as if they had a row per row of x, land in their guards for every row.
        n, d = self.rows, self.width
        parameters = (n * d if self.wide else d) + GUARD
        self.guards = {"x": d + GUARD, "gamma": parameters, "beta": parameters, "y": d + GUARD}
        at = 0
        for name, size in (("x", n * d), ("gamma", d), ("beta", d)):
            at = self._place(name, size, at)
        self.floats = self._place("y", n * d, at)

    def _place(self, name: str, size: int, at: int) -> int:
        start = -(-(at + self.guards[name]) // ALIGN) * ALIGN
        self.starts[name] = start
        return start + size + self.guards[name]


@dataclass
class Call:
    """What one call left behind: the output with its surroundings, the inputs afterwards, how it ended."""

    outcome: str  # "returned", "stalled" (over its budget), "crashed" (a signal), "raised" (a Mojo error)
    y: np.ndarray  # (rows, width): the output buffer
    before: np.ndarray  # the guard values just before the output, and after it
    after: np.ndarray
    inputs_changed: list[str]  # "x", "gamma", "beta" (or their guards) the kernel wrote into
    reference_seconds: float = 0.0
    kernel_seconds: float = 0.0
    budget: float = 0.0
    message: str = ""  # what the process printed last (a raised Error's text)
    signal_name: str = ""
    simd_width: int = 0  # floats per vector register where it ran (0: not known)
    calls: int = 1  # calls on the same input, and how many gave other bits than the first (and where first)
    different_calls: int = 0
    first_different_row: int = -1


def run(binary: Path, x, gamma, beta, eps: float, scale: float = 1.0, calls: int = 1, wide: bool = False) -> Call:
    """`calls` calls of the learner's kernel on (x, gamma, beta) with epsilon `eps` (one of EPSILONS), in one
    process: the output is the last call's; the harness counts the calls whose output differs from the first's."""
    x = np.ascontiguousarray(x, np.float32)
    rows, width = x.shape
    layout = Layout(rows, width, wide=wide)
    size = HEADER_BYTES + 4 * layout.floats
    with tempfile.TemporaryFile(prefix="layernorm-kernel-") as file, tempfile.TemporaryFile() as printed:
        file.truncate(size)
        shared = mmap.mmap(file.fileno(), size)
        header = np.frombuffer(shared, np.int64, HEADER_BYTES // 8)
        floats = np.frombuffer(shared, np.float32, layout.floats, HEADER_BYTES)
        floats[:] = np.nan  # the inputs' guards: a read past an input's end brings NaN into the result
        inputs = {"x": x.ravel(), "gamma": np.asarray(gamma, np.float32), "beta": np.asarray(beta, np.float32)}
        for name, values in inputs.items():
            floats[layout.starts[name] : layout.starts[name] + values.size] = values
        y_start, guard = layout.starts["y"], layout.guards["y"]
        floats[y_start - guard :] = CANARY
        header[[ROWS, WIDTH, EPSILON, CALLS]] = rows, width, EPSILONS.index(eps), calls
        header[[X_AT, GAMMA_AT, BETA_AT, Y_AT]] = [layout.starts[k] for k in ("x", "gamma", "beta", "y")]
        snapshot = floats[: y_start - guard].copy()
        process = subprocess.Popen(
            [str(binary), str(file.fileno()), str(size)],
            stdin=subprocess.DEVNULL,
            stdout=printed,
            stderr=subprocess.STDOUT,
            pass_fds=(file.fileno(),),
            start_new_session=True,
            preexec_fn=_contained,
        )
        outcome, budget = _wait(process, header, scale * calls)
        printed.seek(0)
        message = printed.read()[-2000:].decode("utf-8", "replace").strip()
        code, status = process.returncode, int(header[STATUS])
        if outcome == "returned" and code is not None and code < 0:
            outcome = "crashed"
        elif outcome == "returned" and (code or status < RETURNED):
            outcome = "raised"
        call = Call(
            outcome=outcome,
            y=floats[y_start : y_start + rows * width].reshape(rows, width).copy(),
            before=floats[y_start - guard : y_start].copy(),
            after=floats[y_start + rows * width :].copy(),
            inputs_changed=_changed(snapshot, floats[: y_start - guard], layout),
            reference_seconds=int(header[REFERENCE_NS]) / 1e9,
            kernel_seconds=int(header[KERNEL_NS]) / 1e9,
            budget=budget,
            message=message,
            signal_name=signal.Signals(-code).name if outcome == "crashed" else "",
            simd_width=int(header[SIMD_WIDTH]),
            calls=calls,
            different_calls=int(header[DIFFERENT_CALLS]),
            first_different_row=int(header[FIRST_DIFFERENT_ROW]),
        )
        del header, floats
        shared.close()
    return call


def _wait(process: subprocess.Popen, header: np.ndarray, scale: float) -> tuple[str, float]:
    """("returned" | "stalled", the kernel's budget in seconds): polls the status the harness writes."""
    deadline, budget = time.monotonic() + START_SECONDS * scale, 0.0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        status = int(header[STATUS])
        if status == RUNNING and not budget:
            reference = int(header[REFERENCE_NS]) / 1e9
            budget = max(KERNEL_FLOOR_SECONDS, REFERENCE_MULTIPLE * reference) * scale
            deadline = time.monotonic() + budget
        if status == RETURNED:
            deadline = max(deadline, time.monotonic() + 5)  # leaving the process is not the kernel's time
        try:
            over_memory = watched.memory_info().rss > MEMORY_LIMIT
        except psutil.Error:
            over_memory = False
        if time.monotonic() > deadline or over_memory:
            _kill(process)
            return ("stalled" if status < RETURNED else "returned"), budget
        time.sleep(0.005)
    return "returned", budget


def _changed(before: np.ndarray, after: np.ndarray, layout: Layout) -> list[str]:
    """The inputs (their values or their guards) whose floats differ after the call (NaN equals NaN)."""
    same = (before == after) | (np.isnan(before) & np.isnan(after))
    names = ("x", "gamma", "beta")
    edges = [max(layout.starts[name] - layout.guards[name], 0) for name in names] + [len(before)]  # with guards
    return [name for name, start, end in zip(names, edges, edges[1:], strict=False) if not same[start:end].all()]
