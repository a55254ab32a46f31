"""The judge's handle on the learner's process.

The learner's file runs in a child process (`worker.py`). The judge sends it calls and reads plain
data back. A crash, an exit, a hang, a runaway allocation or a garbled reply becomes a
`LearnerError` with a sentence a learner can act on; the judge's own interpreter never runs
learner code.

Time limits catch hangs, not slowness: a call may use `limit` seconds of CPU (its process and
children), and `WALL_FACTOR` times that in wall-clock time. A busy machine slows the clock a
call sees, not the CPU it needs, so a correct file passes under load while a spinning loop still
hits the CPU limit; a process blocked without spinning hits the wall-clock one.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.check import REPO_ROOT, wire

OUTPUT_TAIL_BYTES = 4000  # how much of the learner's printing we keep to show after a failure
WALL_FACTOR = 6.0  # wall-clock seconds allowed per CPU second of the limit
POLL_SECONDS = 0.25  # how often a waiting call looks at the child's CPU time and memory
MEMORY_LIMIT = min(8 << 30, psutil.virtual_memory().total // 2)  # bytes of resident memory, the whole tree
SCALE_ENV = "LAYERNORM_TIMEOUT_SCALE"
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


def _spawn(path: Path, module_name: str) -> _Child:
    """A worker process for the learner's file, in a session of its own (killed as a group)."""
    cmd_read, cmd_write = os.pipe()
    reply_read, reply_write = os.pipe()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "tests.check.worker", str(cmd_read), str(reply_write), str(path), module_name]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(cmd_read, reply_write),
        start_new_session=True,  # lets us kill anything the learner's code spawned, too
    )
    os.close(cmd_read)
    os.close(reply_write)
    drain = _OutputDrain(process.stdout)
    drain.start()
    return _Child(process, cmd_write, reply_read, drain)


def _kill(child: _Child) -> None:
    try:
        os.killpg(child.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.process.wait()
    for fd in (child.cmd_fd, child.reply_fd):
        try:
            os.close(fd)
        except OSError:
            pass
    child.drain.join(timeout=1)


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
    ):
        self.path = Path(path).resolve()
        self.module_name = module_name
        self.import_timeout = import_timeout
        self.scale = scale  # --timeout-scale
        self.cancel = cancel
        self.spare = spare if spare is not None and spare.path == self.path else None
        self.process = None
        self.import_error: LearnerError | None = None

    # -- life cycle ---------------------------------------------------------------------
    def _start(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RunCancelled
        spare, self.spare = self.spare, None
        child = spare.child if spare else _spawn(self.path, self.module_name)
        self.process, self.cmd_fd, self.reply_fd, self.drain = child.process, child.cmd_fd, child.reply_fd, child.drain
        if spare and not spare.preloaded:  # its preload reply comes first; a failed preload only means a slower load
            try:
                self._receive(_Watch(self.process.pid, self.import_timeout * self.scale, "importing libraries"))
            except (LearnerError, EOFError, OSError):
                pass

    def stop(self) -> None:
        if self.spare is not None:
            self.spare.discard()
            self.spare = None
        if self.process is None:
            return
        _kill(_Child(self.process, self.cmd_fd, self.reply_fd, self.drain))
        self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

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

    def _request(self, command: tuple, limit: float, during: str):
        watch = _Watch(self.process.pid, limit * self.scale, during)
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
    """One call's limits: CPU seconds, wall-clock seconds, resident memory of the learner's process tree."""

    def __init__(self, pid: int, cpu_limit: float, during: str):
        self.root, self.during = psutil.Process(pid), during
        self.cpu_limit, self.wall_limit = cpu_limit, cpu_limit * WALL_FACTOR
        self.started, self.cpu_start = time.monotonic(), self._usage()[0]

    def _usage(self) -> tuple[float, int]:
        """(CPU seconds, resident bytes) of the process and its children, alive ones only."""
        cpu, memory = 0.0, 0
        for process in [self.root, *self._children()]:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu += times.user + times.system
                    memory += process.memory_info().rss
            except psutil.Error:
                pass  # it ended between the listing and the reading
        return cpu, memory

    def _children(self):
        try:
            return self.root.children(recursive=True)
        except psutil.Error:
            return []

    def problem(self) -> LearnerError | None:
        """The limit this call has passed, as the error to report, or None."""
        cpu, memory = self._usage()
        used, waited = cpu - self.cpu_start, time.monotonic() - self.started
        if memory > MEMORY_LIMIT:
            return LearnerOutOfMemory(
                f"the process used {memory / 2**30:.1f} GiB of memory while {self.during} (the limit is "
                f"{MEMORY_LIMIT / 2**30:.0f} GiB) and was stopped: an allocation far larger than the inputs?",
                self.during,
            )
        if used > self.cpu_limit:
            return LearnerTimeout(
                f"no answer within the time limit while {self.during}: it used {used:.0f} s of CPU (the limit is "
                f"{self.cpu_limit:.0f} s), an infinite loop or far too slow; {RAISE_LIMITS}",
                self.during,
            )
        if waited > self.wall_limit:
            return LearnerTimeout(
                f"no answer within the time limit while {self.during}: {waited:.0f} s passed (the limit is "
                f"{self.wall_limit:.0f} s) with only {used:.0f} s of CPU, blocked on input, a lock or a sleep?; "
                f"{RAISE_LIMITS}",
                self.during,
            )
        return None
