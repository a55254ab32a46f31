"""The judge's handle on the learner's process.

The learner's file runs in a child process (`worker.py`). The judge sends it calls and reads plain
data back. A crash, an exit, a hang, a runaway allocation or a garbled reply becomes a
`LearnerError` with a sentence a learner can act on; the judge's own interpreter never runs
learner code.

Time limits catch hangs, not slowness: a call may use `limit` seconds of CPU (its process and
children), and `WALL_FACTOR` times that in wall-clock time. A busy machine slows the clock a
call sees, not the CPU it needs, so a correct file passes under load while a spinning loop still
hits the CPU limit; a process blocked without spinning hits the wall-clock one. Where MAX
compiles (a minute of CPU, cold), the worker says so (`worker.compiling`): the learner's own code,
the time outside compiles, gets the tighter `code_limit`, in CPU and wall-clock time alike.

No learner process outlives the checker: each runs in a session of its own, killed as a group when
its sandbox closes and by `stop_all` on the checker's way out; if the checker dies without a way out
(SIGKILL), the worker's parent-death signal and its guard end the group (see `worker.py`).
"""

from __future__ import annotations

import functools
import mmap
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.check import REPO_ROOT, wire

OUTPUT_TAIL_BYTES = 4000  # how much of the learner's printing we keep to show after a failure
WALL_FACTOR = 6.0  # wall-clock seconds allowed per CPU second of the limit
POLL_SECONDS = 0.25  # how often a waiting call looks at the child's CPU time and memory
MEMORY_LIMIT = min(8 << 30, psutil.virtual_memory().total // 2)  # bytes of resident memory, the whole tree
SCALE_ENV = "LAYERNORM_TIMEOUT_SCALE"
LOOPING = "an infinite loop or far too slow"
BLOCKED = "blocked on input, a lock or a sleep?"
RAISE_LIMITS = f"on a slow machine, raise the limits: --timeout-scale 3 (or {SCALE_ENV}=3)"


class LearnerError(Exception):
    """The learner's code did not produce a value; `str()` is the sentence shown to them."""

    def __init__(self, message: str, *, exc_type: str | None = None, detail: str = "", where=None):
        super().__init__(message)
        self.exc_type = exc_type
        self.detail = detail  # the exception's own message, without its type
        self.where = where  # (line, source) in the learner's file, when known


class LearnerOverLimit(LearnerError):
    """A call passed a time or memory limit; the process was stopped, and the same call would do it again."""

    def __init__(self, message: str, during: str):
        super().__init__(message)
        self.during = during


class LearnerTimeout(LearnerOverLimit):
    pass


class LearnerOutOfMemory(LearnerOverLimit):
    pass


class LearnerCrashed(LearnerError):
    pass


class MissingName(LearnerError):
    pass


class _OutputDrain(threading.Thread):
    """Reads whatever the learner prints, keeps the tail; megabytes of output cost nothing."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.tail = b""
        self.total = 0

    def run(self):
        for chunk in iter(lambda: self.stream.read1(65536), b""):
            self.total += len(chunk)
            self.tail = (self.tail + chunk)[-OUTPUT_TAIL_BYTES:]


class RunCancelled(Exception):  # noqa: N818  (not an error: the watch asked for a fresh run)
    """The run was cancelled from outside (a save during `watch`); its process is gone."""


@dataclass
class _Child:
    process: subprocess.Popen
    cmd_fd: int
    reply_fd: int
    drain: _OutputDrain
    meter: mmap.mmap  # the worker's compiles (wire.COMPILE_METER)


# -- every learner process ends with the checker ----------------------------------------------------------
# The read end goes to every worker; the write end never leaves this process, so it closes, and the worker's guard
# reads end-of-file, exactly when this process ends, however it ends.
_LIFELINE_READ, _LIFELINE_WRITE = os.pipe()
# A worker's parent-death signal fires when the thread that started it ends: all start from this one thread,
# which lives as long as the checker (`watch` keeps workers that a finished run's thread started).
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
_LIVE: set[subprocess.Popen] = set()  # every worker not yet killed: stop_all's list
_CLOSING = threading.Event()  # set by stop_all: no worker starts after it


def stop_all() -> None:
    """Kill every learner process this checker started, and start none after: the checker is on its way out.

    Safe in a signal handler: it takes no lock (the handler may interrupt a thread that holds one).
    """
    _CLOSING.set()
    for process in list(_LIVE):
        _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _popen(*args, **kwargs) -> subprocess.Popen:
    process = subprocess.Popen(*args, **kwargs)
    _LIVE.add(process)
    if _CLOSING.is_set():  # stop_all ran while it started
        _kill_group(process)
    return process


def _shared_page(size: int) -> tuple[int, mmap.mmap]:
    """A file descriptor for the worker, and this side's mapping of the same `size` bytes."""
    if hasattr(os, "memfd_create"):  # Linux: memory with a file descriptor, no file
        fd = os.memfd_create("compile-meter")
    else:
        with tempfile.TemporaryFile() as file:  # already unlinked: the duplicate descriptor is all that is left
            fd = os.dup(file.fileno())
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


def _spawn(path: Path, module_name: str, private: Path | None = None) -> _Child:
    """A worker process for the learner's file, in a session of its own (killed as a group); with `private`
    (a folder), the process's HOME, TMPDIR and working directory are inside it (see `Sandbox`)."""
    if _CLOSING.is_set():
        raise RunCancelled
    cmd_read, cmd_write = os.pipe()
    reply_read, reply_write = os.pipe()
    meter_fd, meter = _shared_page(wire.COMPILE_METER.size)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if private:
        _make_private(env, private)
    fds = (_LIFELINE_READ, cmd_read, reply_write, meter_fd)
    command = [sys.executable, "-m", "tests.check.worker", str(os.getpid()), *map(str, fds), str(path), module_name]
    try:
        process = _SPAWNER.submit(
            _popen,
            command,
            cwd=private / "work" if private else REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=fds,
            start_new_session=True,  # lets us kill anything the learner's code spawned, too
        ).result()
    except BaseException:
        for fd in (cmd_write, reply_read):
            os.close(fd)
        meter.close()
        raise
    finally:
        for fd in (cmd_read, reply_write, meter_fd):
            os.close(fd)
    drain = _OutputDrain(process.stdout)
    drain.start()
    return _Child(process, cmd_write, reply_read, drain, meter)


def _kill(child: _Child) -> None:
    _kill_group(child.process)
    child.process.wait()
    _LIVE.discard(child.process)
    for fd in (child.cmd_fd, child.reply_fd):
        try:
            os.close(fd)
        except OSError:
            pass
    child.drain.join(timeout=1)
    child.meter.close()


# -- a private HOME, TMPDIR and working directory (grade) -------------------------------------------------
def _make_private(env: dict, root: Path) -> None:
    """HOME, TMPDIR and the XDG folders in `env` inside `root`, where a submission may write what it likes; MAX's
    and Mojo's cache of compiled kernels stays the shared one (MODULAR_CACHE_DIR), or every submission would
    compile MAX's kernels again, a minute of CPU each on a cold cache."""
    home, tmp = root / "home", root / "tmp"
    for folder in (home, tmp, root / "work"):
        folder.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):  # they follow HOME
        env.pop(name, None)
    shared = _shared_kernel_cache()
    if shared:
        env["MODULAR_CACHE_DIR"] = shared


@functools.cache
def _shared_kernel_cache() -> str | None:
    """The folder where MAX and Mojo keep this user's compiled kernels, as the `mojo` tool resolves it
    (MODULAR_CACHE_DIR, MODULAR_HOME, ~/.modular where it exists, then the XDG cache folder: MAX 26.7 follows the
    same rules), or None without `mojo`: a private HOME then gets a cache of its own, slower but not wrong."""
    mojo = shutil.which("mojo", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    try:
        found = subprocess.run([mojo, "--print-cache-location"], capture_output=True, text=True, timeout=60, check=True)
    except (TypeError, OSError, subprocess.SubprocessError):  # TypeError: no mojo found
        return None
    location = Path(found.stdout.strip())
    return str(location.parent) if location.name == ".mojo_cache" else None  # beside .max_cache and .mogg_cache


class Spare:
    """A worker started ahead of time that imports the step's libraries (MAX: seconds) and then waits
    for the learner's file, which it reads only when a `Sandbox` adopts it: the code is the latest."""

    def __init__(self, path: Path, preload=()):
        self.path = Path(path).resolve()
        self.child = _spawn(self.path, self.path.stem)
        self.preloaded = False  # its reply to the preload is read, by wait_ready() or by the adopting Sandbox
        wire.write_frame(self.child.cmd_fd, ("preload", list(preload)))

    def wait_ready(self, timeout: float) -> bool:
        """Blocks until the libraries are imported (True), or `timeout` seconds pass (False)."""
        if not self.preloaded and select.select([self.child.reply_fd], [], [], timeout)[0]:
            (size,) = wire.HEADER.unpack(wire.read_exact(self.child.reply_fd, wire.HEADER.size))
            wire.read_exact(self.child.reply_fd, size)  # ("ok", None), or why a preload failed: a slower load
            self.preloaded = True
        return self.preloaded

    def discard(self) -> None:
        _kill(self.child)


class Sandbox:
    """One child process running the learner's file; restarted after a crash or a hang.

    `cancel` (a threading.Event) ends the run from outside: the process is killed within a poll and
    the run raises `RunCancelled`. `spare` is a `Spare` for this file, adopted instead of a cold start.
    `code_limit` caps the CPU seconds of each call outside MAX's compiles (None: the call's limit).
    `private` (grading strangers' files) gives the process its own HOME, TMPDIR and working directory,
    in a temporary folder removed when the sandbox closes; a spare, started without them, is not used.
    """

    def __init__(
        self,
        path: Path,
        module_name: str,
        *,
        import_timeout: float,
        scale: float = 1.0,
        cancel=None,
        spare: Spare | None = None,
        code_limit: float | None = None,
        private: bool = False,
    ):
        self.path = Path(path).resolve()
        self.module_name = module_name
        self.import_timeout = import_timeout
        self.scale = scale  # --timeout-scale
        self.cancel = cancel
        self.spare = spare if spare is not None and spare.path == self.path and not private else None
        self.code_limit = code_limit
        self.private = (
            tempfile.TemporaryDirectory(prefix="layernorm-check-", ignore_cleanup_errors=True) if private else None
        )
        self.child: _Child | None = None
        self.process = None
        self.import_error: LearnerError | None = None

    # -- life cycle ---------------------------------------------------------------------
    def _start(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RunCancelled
        spare, self.spare = self.spare, None
        private = Path(self.private.name) if self.private else None
        self.child = spare.child if spare else _spawn(self.path, self.module_name, private)
        self.process, self.cmd_fd, self.reply_fd, self.drain = (
            self.child.process,
            self.child.cmd_fd,
            self.child.reply_fd,
            self.child.drain,
        )
        if spare and not spare.preloaded:  # its preload reply comes first; a failed preload only means a slower load
            try:
                self._receive(self._watch(self.import_timeout, "importing libraries", code_limit=None))
            except (LearnerError, EOFError, OSError):
                pass

    def stop(self) -> None:
        if self.spare is not None:
            self.spare.discard()
            self.spare = None
        if self.process is None:
            return
        _kill(self.child)
        self.process = None

    def close(self) -> None:
        """Stop the process and remove the private folder, if any: what the learner's code wrote there goes too."""
        self.stop()
        if self.private is not None:
            self.private.cleanup()  # a link the learner's code left there is removed, never followed
            self.private = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def last_output_line(self) -> str:
        """The last line the learner's process printed: after a crash, often the reason."""
        drain = getattr(self, "drain", None)
        lines = drain.tail.decode("utf-8", "replace").strip().splitlines() if drain else []
        return lines[-1].strip()[:300] if lines else ""

    # -- calls --------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        """Start the child and import the learner's file once; an import failure is sticky."""
        if self.import_error is not None:
            raise self.import_error
        if self.process is not None:
            return
        self._start()
        try:
            self._request(("load",), self.import_timeout, during="importing your file")
        except LearnerError as error:
            self.import_error = error
            self.stop()
            raise

    def call(self, target: tuple, args: tuple, kwargs: dict, limit: float, during: str):
        """Run `target` in the learner's process with at most `limit` CPU seconds (times the scale)."""
        self.ensure_loaded()
        return self._request(("call", target, args, kwargs), limit, during=during)

    def _receive(self, watch: _Watch):
        (size,) = wire.HEADER.unpack(self._read(wire.HEADER.size, watch))
        if size > wire.MAX_FRAME_BYTES:
            raise LearnerCrashed(f"the process sent a garbled reply while {watch.during}")
        return wire.loads_plain(self._read(size, watch))

    def _watch(self, limit: float, during: str, code_limit: float | None) -> _Watch:
        code_limit = limit if code_limit is None else min(limit, code_limit)
        return _Watch(self.process.pid, limit * self.scale, during, code_limit * self.scale, self.child.meter)

    def _request(self, command: tuple, limit: float, during: str):
        watch = self._watch(limit, during, self.code_limit)
        try:
            wire.write_frame(self.cmd_fd, command)
            reply = self._receive(watch)
        except RunCancelled:
            raise
        except LearnerError:
            self.stop()
            raise
        except (BrokenPipeError, EOFError):
            raise self._crashed(during) from None
        except Exception as exc:  # an unpicklable or forbidden reply
            self.stop()
            raise LearnerCrashed(f"the reply could not be read while {during} ({exc})") from None
        status = reply[0]
        if status == "ok":
            return reply[1]
        if status == "missing":
            raise MissingName(f"your file defines no `{reply[1]}`")
        if status == "raised":
            _, exc_type, message, where = reply
            text = f"{exc_type}: {message}" if message else exc_type
            raise LearnerError(text, exc_type=exc_type, detail=message, where=where)
        raise LearnerError(f"the result could not be sent back ({reply[1]})")

    def _read(self, size: int, watch: _Watch) -> bytes:
        chunks, remaining = [], size
        while remaining:
            if not select.select([self.reply_fd], [], [], POLL_SECONDS)[0]:
                if self.cancel is not None and self.cancel.is_set():
                    self.stop()
                    raise RunCancelled
                problem = watch.problem()
                if problem:
                    self.stop()
                    raise problem
                continue
            chunk = os.read(self.reply_fd, min(remaining, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _crashed(self, during: str) -> LearnerCrashed:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None  # alive but closed its reply pipe
        self.stop()
        if code is None:
            reason = "the process stopped answering (its reply pipe was closed)"
        elif code < 0:
            reason = f"the process was killed by signal {signal.Signals(-code).name}"
        else:
            reason = f"the process exited (code {code}): something called sys.exit() or os._exit()"
        last = self.last_output_line()
        return LearnerCrashed(f"{reason} while {during}" + (f"; its last output: {last!r}" if last else ""))


class _Watch:
    """One call's limits: CPU seconds, wall-clock seconds, resident memory of the learner's process tree; and the
    tighter `code_limit` on the time outside MAX's compiles (CPU of the worker itself, and wall clock).

    The worker's compile meter is read at each poll: an interval in which a compile ran counts as compiling.
    """

    def __init__(self, pid: int, cpu_limit: float, during: str, code_limit: float | None = None, meter=None):
        self.root, self.during, self.meter = psutil.Process(pid), during, meter
        self.cpu_limit, self.wall_limit = cpu_limit, cpu_limit * WALL_FACTOR
        self.code_limit = cpu_limit if code_limit is None else code_limit
        self.code_wall_limit = self.code_limit * WALL_FACTOR
        self.started = time.monotonic()
        self.cpu_start, _, own = self._usage()
        self.last = (self.started, self.cpu_start, own, self._compiles())
        self.code_cpu = self.code_wall = 0.0  # the worker's own CPU, and the wall clock, outside compiles
        self.compile_cpu = 0.0  # the process tree's CPU while compiling

    def _usage(self) -> tuple[float, int, float]:
        """(CPU seconds, resident bytes) of the process and its children, alive ones only; CPU of the process."""
        cpu, memory, own = 0.0, 0, 0.0
        for process in [self.root, *self._children()]:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu += times.user + times.system
                    memory += process.memory_info().rss
            except psutil.Error:
                continue  # it ended between the listing and the reading
            if process is self.root:
                own = times.user + times.system
        return cpu, memory, own

    def _children(self):
        try:
            return self.root.children(recursive=True)
        except psutil.Error:
            return []

    def _compiles(self) -> tuple[int, int]:
        return wire.COMPILE_METER.unpack_from(self.meter) if self.meter is not None else (0, 0)

    def problem(self) -> LearnerError | None:
        """The limit this call has passed, as the error to report, or None."""
        cpu, memory, own = self._usage()
        now, compiles = time.monotonic(), self._compiles()
        last_time, last_cpu, last_own, last_compiles = self.last
        if compiles[0] or last_compiles[0] or compiles[1] != last_compiles[1]:  # a compile ran since the last poll
            self.compile_cpu += max(cpu - last_cpu, 0.0)
        else:
            self.code_cpu += max(own - last_own, 0.0)
            self.code_wall += now - last_time
        self.last = (now, cpu, own, compiles)
        used, waited = cpu - self.cpu_start, now - self.started
        outside = " outside compiles" if self.compile_cpu else ""
        if memory > MEMORY_LIMIT:
            return LearnerOutOfMemory(
                f"the process used {memory / 2**30:.1f} GiB of memory while {self.during} (the limit is "
                f"{MEMORY_LIMIT / 2**30:.0f} GiB) and was stopped: an allocation far larger than the inputs?",
                self.during,
            )
        passed = self._time_limit_passed(used, waited, outside)
        if passed is None:
            return None
        if memory > MEMORY_LIMIT / 2:  # filling memory is slow where pages are slow to hand out: name the allocation
            return LearnerOutOfMemory(
                f"the process had grown to {memory / 2**30:.1f} GiB of memory when it passed its time limit while "
                f"{self.during} (the memory limit is {MEMORY_LIMIT / 2**30:.0f} GiB) and was stopped: an allocation "
                "far larger than the inputs?",
                self.during,
            )
        return LearnerTimeout(
            f"no answer within the time limit while {self.during}: {passed}; {RAISE_LIMITS}", self.during
        )

    def _time_limit_passed(self, used: float, waited: float, outside: str) -> str | None:
        """Which time limit this call has passed, and what it suggests; None while it is within them all."""
        if self.code_cpu > self.code_limit:
            spent, limit = self.code_cpu, self.code_limit
            return f"it used {spent:.0f} s of CPU{outside} (the limit is {limit:.0f} s), {LOOPING}"
        if used > self.cpu_limit and self.compile_cpu > used / 2:
            return (
                f"it used {used:.0f} s of CPU, {self.compile_cpu:.0f} s of it while MAX compiled (the limit is "
                f"{self.cpu_limit:.0f} s): a slow or busy machine?"
            )
        if used > self.cpu_limit:
            return f"it used {used:.0f} s of CPU (the limit is {self.cpu_limit:.0f} s), {LOOPING}"
        if self.code_wall > self.code_wall_limit:
            spent, limit = self.code_wall, self.code_wall_limit
            return (
                f"{spent:.0f} s passed{outside} (the limit is {limit:.0f} s) with only {used:.0f} s of CPU, {BLOCKED}"
            )
        if waited > self.wall_limit:
            return (
                f"{waited:.0f} s passed (the limit is {self.wall_limit:.0f} s) with only {used:.0f} s of CPU, {BLOCKED}"
            )
        return None
