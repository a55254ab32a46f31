"""One engine for every step: run a checklist against a learner's file and report the truth.

A step's checklist (`tests/check/step_NN.py`) owns the maths and the hints; this module owns
isolation, time limits, the report and the exit code.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.check.sandbox import REPO_ROOT, LearnerCrashed, LearnerError, LearnerTimeout, MissingName, Sandbox

# Set by the project's own tests: a bug in a checklist must surface, not become a ❌.
STRICT_ENV = "LAYERNORM_CHECK_STRICT"


class Fail(Exception):
    """A check's verdict against the learner; the message is the hint shown under ❌.

    A probe may raise it in the learner's process too (e.g. "your file defines no `LayerNorm`
    class"): it arrives as that hint.
    """


@dataclass
class Check:
    name: str
    run: Callable[[Learner], str | None]
    timeout: float


@dataclass
class Checklist:
    step: str
    title: str
    import_timeout: float = 15.0
    default_timeout: float = 10.0
    skeleton: str | None = None  # paths relative to the repository root
    solution: str | None = None
    # words in an import failure -> the hint that explains it (e.g. a module an old API had)
    import_hints: dict[str, str] = field(default_factory=dict)
    # hooks: extra CLI options, lines printed before the checks, work done after them
    add_arguments: Callable | None = None
    notes: Callable | None = None
    after: Callable | None = None
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self):
        self.skeleton = self.skeleton or f"steps/step_{self.step}.py"
        self.solution = self.solution or f"solutions/solution_{self.step}.py"

    def check(self, name: str, *, timeout: float | None = None):
        def register(function):
            self.checks.append(Check(name, function, timeout or self.default_timeout))
            return function

        return register


class Learner:
    """What a check sees of the learner's file: call its functions, or run a probe beside them.

    Every value that comes back is plain data (numbers, strings, containers, NumPy arrays, or a
    `wire.Foreign` marker). Nothing here runs the learner's code in this process.
    """

    def __init__(self, sandbox: Sandbox, path: Path, options):
        self._sandbox = sandbox
        self.path = path
        self.options = options
        self.deadline = float("inf")

    @property
    def source(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")

    def imported_modules(self) -> set[str]:
        """Top-level names of the modules the learner's file imports (for rules like "NumPy only")."""
        self._sandbox.ensure_loaded()  # a file that does not import (or parse) has nothing to judge
        names = set()
        for node in ast.walk(ast.parse(self.source)):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        return names

    def call(self, name: str, *args, **kwargs):
        """Call the learner's top-level `name(*args, **kwargs)` in their process."""
        return self._sandbox.call(("attr", name), args, kwargs, self.deadline, during=f"calling {name}")

    def probe(self, function: Callable, *args, during: str | None = None, **kwargs):
        """Run `function(learner_module, *args, **kwargs)` in the learner's process.

        `function` must be a top-level function of a checklist module; it turns whatever the
        learner's objects produce into plain data, and the judging happens back here.
        """
        target = ("probe", function.__module__, function.__name__)
        during = during or function.__name__.strip("_").replace("_", " ")
        return self._sandbox.call(target, args, kwargs, self.deadline, during=during)


@dataclass
class Result:
    name: str
    passed: bool
    message: str


@dataclass
class Report:
    step: str
    title: str
    file: str
    results: list[Result]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def as_json(self) -> dict:
        return {
            "step": self.step,
            "title": self.title,
            "file": self.file,
            "passed": self.passed,
            "notes": self.notes,
            "checks": [{"name": r.name, "passed": r.passed, "message": r.message} for r in self.results],
        }


def load_checklist(step: str) -> Checklist:
    return importlib.import_module(f"tests.check.step_{step}").checklist


def available_steps() -> list[str]:
    return sorted(p.stem.removeprefix("step_") for p in Path(__file__).parent.glob("step_[0-9][0-9].py"))


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def explain(error: LearnerError, path: Path) -> str:
    """Turn what went wrong in the learner's process into a one-line hint."""
    where = ""
    if error.where:
        line, code = error.where
        where = f" ({path.name}:{line}" + (f": `{code}`" if code else "") + ")"
    text = str(error)
    kind = error.exc_type
    if isinstance(error, (LearnerTimeout, LearnerCrashed, MissingName)):
        return text[0].upper() + text[1:]
    if kind == "Fail":  # a probe's own verdict in the learner's process, e.g. "your class has no `ln`"
        detail = error.detail[:1].upper() + error.detail[1:]
        return detail if detail.endswith((".", "?", "!")) else detail + "."
    if kind == "NotImplementedError":
        return f"Still a TODO: NotImplementedError was raised{where}. Fill in that block."
    if kind == "SyntaxError" or kind == "IndentationError":
        return f"The file does not parse: {text}{where}."
    if kind == "SystemExit":
        return f"Your code called sys.exit(){where}; remove it, the checker needs your functions to return."
    if kind in ("TypeError", "AttributeError") and "NoneType" in text:
        return f"A `None` placeholder is still in use: {text}{where}. Replace the None with the computation."
    if kind in ("ModuleNotFoundError", "ImportError"):
        return f"An import failed: {text}{where}."
    if kind == "NameError":
        return f"{text}{where}: is an import or a definition missing?"
    return f"Your code raised {text}{where}."


def _short(text: str, limit: int = 600) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_checklist(checklist: Checklist, path: Path, options=None, on_result=None, on_note=None) -> Report:
    """Run every check of `checklist` against the file at `path`; later checks run after failures.

    `on_result` and `on_note` see each result and note as it happens (the report streams).
    """
    strict = os.environ.get(STRICT_ENV) == "1"
    path = Path(path)
    report = Report(checklist.step, checklist.title, display_path(path), [], [])
    emit = on_result or (lambda result: None)

    def note(line: str) -> None:
        report.notes.append(line)
        if on_note:
            on_note(line)

    for line in checklist.notes(options) if checklist.notes else []:
        note(line)
    with Sandbox(path, path.stem, import_timeout=checklist.import_timeout) as sandbox:
        learner = Learner(sandbox, path, options)
        imports = _import_check(sandbox, path, checklist.import_hints)
        report.results.append(imports)
        emit(imports)
        for check in checklist.checks:
            learner.deadline = time.monotonic() + check.timeout
            try:
                detail = check.run(learner)
                result = Result(check.name, True, detail or "")
            except Fail as verdict:
                result = Result(check.name, False, _short(str(verdict)))
            except LearnerError as error:
                if error is sandbox.import_error:
                    result = Result(check.name, False, "Not run: the file does not import (see above).")
                else:
                    result = Result(check.name, False, _short(explain(error, path)))
            except Exception as bug:
                if strict:
                    raise
                verdict = f"The checker could not judge this result ({type(bug).__name__}: {bug})."
                result = Result(check.name, False, _short(verdict))
            report.results.append(result)
            emit(result)
        if checklist.after:
            for line in checklist.after(learner, options) or []:
                note(line)
    return report


def _import_check(sandbox: Sandbox, path: Path, hints: dict[str, str]) -> Result:
    name = f"{path.name} imports"
    try:
        sandbox.ensure_loaded()
        return Result(name, True, "")
    except LearnerError as error:
        extra = [hint for words, hint in hints.items() if words in str(error)]
        return Result(name, False, _short(" ".join([explain(error, path), *extra])))
