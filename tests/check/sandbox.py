"""The judge's handle on the learner's process.

The learner's file runs in a child process (`worker.py`). The judge sends it calls and reads plain
data back with a deadline. A crash, an exit, a hang or a garbled reply becomes a `LearnerError`
with a sentence a learner can act on; the judge's own interpreter never runs learner code.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.check import wire

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_TAIL_BYTES = 4000  # how much of the learner's printing we keep to show after a failure


class LearnerError(Exception):
    """The learner's code did not produce a value; `str()` is the sentence shown to them."""

    def __init__(self, message: str, *, exc_type: str | None = None, detail: str = "", where=None):
        super().__init__(message)
        self.exc_type = exc_type
        self.detail = detail  # the exception's own message, without its type
        self.where = where  # (line, source) in the learner's file, when known


class LearnerTimeout(LearnerError):
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


class Sandbox:
    """One child process running the learner's file; restarted after a crash or a hang."""

    def __init__(self, path: Path, module_name: str, *, import_timeout: float):
        self.path = Path(path).resolve()
        self.module_name = module_name
        self.import_timeout = import_timeout
        self.process = None
        self.import_error: LearnerError | None = None
        self.hung: set[str] = set()  # what timed out once is not waited for again

    # -- life cycle ---------------------------------------------------------------------
    def _start(self) -> None:
        cmd_read, cmd_write = os.pipe()
        reply_read, reply_write = os.pipe()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.check.worker", str(cmd_read), str(reply_write),
             str(self.path), self.module_name],
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
        self.cmd_fd, self.reply_fd = cmd_write, reply_read
        self.drain = _OutputDrain(self.process.stdout)
        self.drain.start()

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        for fd in (self.cmd_fd, self.reply_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.drain.join(timeout=1)
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
            self._request(("load",), time.monotonic() + self.import_timeout, during="importing your file")
        except LearnerError as error:
            self.import_error = error
            self.stop()
            raise

    def call(self, target: tuple, args: tuple, kwargs: dict, deadline: float, during: str):
        if during in self.hung:
            raise LearnerTimeout(f"not run: {during} did not finish within the time limit in an earlier check")
        self.ensure_loaded()
        try:
            return self._request(("call", target, args, kwargs), deadline, during=during)
        except LearnerTimeout:
            self.hung.add(during)
            raise

    def _request(self, command: tuple, deadline: float, during: str):
        try:
            wire.write_frame(self.cmd_fd, command)
            header = self._read(wire.HEADER.size, deadline, during)
            (size,) = wire.HEADER.unpack(header)
            if size > wire.MAX_FRAME_BYTES:
                raise LearnerCrashed(f"the process sent a garbled reply while {during}")
            reply = wire.loads_plain(self._read(size, deadline, during))
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

    def _read(self, size: int, deadline: float, during: str) -> bytes:
        chunks, remaining = [], size
        while remaining:
            timeout = deadline - time.monotonic()
            ready = select.select([self.reply_fd], [], [], max(timeout, 0))[0] if timeout > 0 else []
            if not ready:
                self.stop()
                raise LearnerTimeout(
                    f"no answer within the time limit while {during}: an infinite loop, or far too slow"
                )
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
