"""The learner's side of a check run: import their file, run what the judge asks, reply.

Started by `sandbox.Sandbox` as
`python -m tests.check.worker CHECKER_PID LIFELINE_FD CMD_FD REPLY_FD METER_FD FILE MODULE_NAME`.
Everything the learner's code prints goes to this process's stdout/stderr, which the judge
drains separately; replies travel on their own pipe, so printing cannot corrupt them.

Before any learner code runs, the process ties its life to the checker's (`end_with_the_checker`)
and marks where MAX compiles (`compiling`): the checker allows a compile minutes of CPU, and the
learner's own code far less, so that an infinite loop is reported in seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import mmap
import os
import signal
import sys
import threading
import traceback

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Where MAX 26.7 compiles, by module: the functions whose calls are compiling (graphs, eager kernels, and
# `mojo precompile` of a custom op's package). A name a later MAX lacks is skipped: its compiles then count as
# the learner's code, which a cold compile can push past that limit (`--timeout-scale` raises it).
COMPILERS = {
    "max.engine.api": ("InferenceSession.compile", "InferenceSession.init_all"),
    "mojo.paths": ("subprocess_run_mojo",),
}


def end_with_the_checker(checker_pid: int, lifeline_fd: int) -> None:
    """This process, and whatever the learner's code starts, ends when the checker ends, however it ends.

    The checker kills this process group on its way out; SIGKILL leaves it no way out, so on Linux the
    kernel kills this process when the checker's thread that started it ends (a parent-death signal;
    the checker starts every worker from one thread that lives as long as it does), and a forked guard
    kills the whole group, the learner's children included, when the lifeline pipe, whose write end
    only the checker holds, reads end-of-file: on every platform, whenever the checker ends.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != checker_pid:  # the checker died before prctl took effect: no signal will come
        os._exit(1)
    if os.fork() == 0:  # before NumPy or MAX start threads: the guard is a plain copy of this process
        _guard_the_group(lifeline_fd)
    os.close(lifeline_fd)  # the learner's children need not inherit it


def _guard_the_group(lifeline_fd: int) -> None:
    """The guard: holds none of the worker's pipes, blocks until the checker is gone, then kills the group."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, lifeline_fd)  # the replies' write end among them: a dead worker reads as dead
        os.closerange(lifeline_fd + 1, os.sysconf("SC_OPEN_MAX"))
        while os.read(lifeline_fd, 1):  # nobody writes: it returns b"" once the checker's end is closed
            pass
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


class _CompileMeter:
    """A page shared with the checker: (compiles under way, compiles begun), read by its time limits."""

    def __init__(self, fd: int):
        from tests.check.wire import COMPILE_METER

        self.layout, self.page = COMPILE_METER, mmap.mmap(fd, COMPILE_METER.size)
        os.close(fd)
        self.lock, self.depth, self.begun = threading.Lock(), 0, 0

    def add(self, step: int) -> None:
        with self.lock:
            self.depth += step
            self.begun += step > 0
            self.layout.pack_into(self.page, 0, self.depth, self.begun)


_METER: _CompileMeter | None = None


@contextlib.contextmanager
def compiling():
    """Marks work that compiles (MAX, the Mojo compiler): the checker counts its time against the call's
    whole limit, not the tighter one on the learner's own code. Does nothing outside a worker."""
    meter = _METER
    if meter is None:
        yield
        return
    meter.add(1)
    try:
        yield
    finally:
        meter.add(-1)


def _metered(function):
    @functools.wraps(function)
    def metered(*args, **kwargs):
        with compiling():
            return function(*args, **kwargs)

    return metered


class _MeterCompilers(importlib.abc.MetaPathFinder):
    """Wraps the COMPILERS of a module as it is imported, whoever imports it (the learner's file included)."""

    def find_spec(self, name, path, target=None):
        if name not in COMPILERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            for dotted in COMPILERS[name]:
                *owner_path, attribute = dotted.split(".")
                owner = functools.reduce(lambda parent, child: getattr(parent, child, None), owner_path, module)
                if callable(getattr(owner, attribute, None)):
                    setattr(owner, attribute, _metered(getattr(owner, attribute)))

        spec.loader.exec_module = exec_module
        return spec


def _learner_frame(tb, learner_file: str):
    """The deepest traceback frame inside the learner's file, as (line number, source line)."""
    found = None
    for frame_summary in traceback.extract_tb(tb):
        if os.path.abspath(frame_summary.filename) == learner_file:
            found = (frame_summary.lineno, (frame_summary.line or "").strip())
    return found


def _error_reply(exc: BaseException, learner_file: str) -> tuple:
    where = _learner_frame(exc.__traceback__, learner_file)
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == learner_file:
        where = (exc.lineno, (exc.text or "").strip())
    try:
        message = str(exc)
    except BaseException:
        message = "<message could not be shown>"
    return ("raised", type(exc).__name__, message[:2000], where)


def load_learner_file(path: str, module_name: str):
    """The learner's file imported as `module_name` (also by step 03's background compile)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _resolve(target, learner):
    kind, *rest = target
    if kind == "attr":
        (name,) = rest
        if not hasattr(learner, name):
            raise _MissingName(name)
        return getattr(learner, name)
    module_name, function_name = rest
    probe = getattr(importlib.import_module(module_name), function_name)
    return lambda *args, **kwargs: probe(learner, *args, **kwargs)


class _MissingName(Exception):
    pass


def main(argv: list[str]) -> None:
    global _METER
    checker_pid, lifeline_fd, cmd_fd, reply_fd, meter_fd = map(int, argv[:5])
    path, module_name = argv[5:7]
    end_with_the_checker(checker_pid, lifeline_fd)
    from tests.check import wire  # NumPy, and its threads, after the fork

    _METER = _CompileMeter(meter_fd)
    sys.meta_path.insert(0, _MeterCompilers())
    sys.dont_write_bytecode = True  # never write __pycache__ next to the learner's file
    learner_file = os.path.abspath(path)
    sys.path.append(os.path.dirname(learner_file))  # after ours: a learner file cannot shadow numpy
    learner = None
    while True:
        try:
            command = wire.read_frame(cmd_fd)
        except EOFError:
            return
        try:
            if command[0] == "preload":  # a spare worker: the step's libraries, before any learner code
                for name in command[1]:
                    importlib.import_module(name)
                reply = ("ok", None)
            elif command[0] == "load":
                learner = load_learner_file(learner_file, module_name)
                reply = ("ok", None)
            else:
                _, target, args, kwargs = command
                result = _resolve(target, learner)(*args, **kwargs)
                reply = ("ok", wire.to_plain(result))
        except _MissingName as missing:
            reply = ("missing", str(missing))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included: all are verdicts
            reply = _error_reply(exc, learner_file)
        try:
            wire.write_frame(reply_fd, reply)
        except BaseException as exc:
            wire.write_frame(reply_fd, ("unsendable", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    from tests.check import worker  # this module under its own name, the one probes import (`compiling`)

    worker.main(sys.argv[1:])
