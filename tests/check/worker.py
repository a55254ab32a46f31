"""The learner's side of a check run: import their file, run what the judge asks, reply.

Started by `sandbox.Sandbox` as `python -m tests.check.worker CMD_FD REPLY_FD FILE MODULE_NAME`.
Everything the learner's code prints goes to this process's stdout/stderr, which the judge
drains separately; replies travel on their own pipe, so printing cannot corrupt them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback

from tests.check import wire


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
    """The learner's file imported as `module_name` (also by max_side's background compile)."""
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
    cmd_fd, reply_fd, path, module_name = int(argv[0]), int(argv[1]), argv[2], argv[3]
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
    main(sys.argv[1:])
