"""One engine for every step: run a checklist against a learner's file and report the truth.

A step's checklist (`tests/check/step_NN/checklist.py`) owns the maths and the hints; this module owns
isolation, time limits, the run-level features (memo, blocking, slow and skipped checks), the
report and the exit code.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.check.sandbox import (
    REPO_ROOT,
    SCALE_ENV,
    LearnerCrashed,
    LearnerError,
    LearnerOverLimit,
    MissingName,
    RunCancelled,
    Sandbox,
)
from tests.check.steps import STEPS

NOT_IMPORTED = "the file does not import (see above)."


class Fail(Exception):
    """A check's verdict against the learner; the message is the hint shown under ❌.

    A probe may raise it in the learner's process too (e.g. "your file defines no `LayerNorm`
    class"): it arrives as that hint. `blocks` names why the later checks cannot run (they are
    reported "Not run: <blocks>"), e.g. "the Mojo package does not compile (see above)." `cause`
    groups failures that one fix ends (a `None` placeholder) without stopping the later checks.
    """

    def __init__(self, message: str, *, blocks: str | None = None, cause: str | None = None):
        super().__init__(message)
        self.blocks, self.cause = blocks, cause


@dataclass
class Check:
    name: str
    run: Callable[[Learner], str | None]
    timeout: float
    slow: bool = False  # skipped by --quick
    despite: tuple[str, ...] = ()  # block reasons under which this check still runs
    always: bool = False  # runs whatever --only selects: the later checks need it (e.g. a compile)
    # why this machine or these options cannot run the check (e.g. it needs a GPU), or None: a skip, not a pass
    skip_if: Callable[[object], str | None] | None = None


@dataclass
class Checklist:
    """A step's checks and how to run them; its title and files come from the step's record (tests/check/steps.py)
    unless given (a checklist of the project's own tests, with no record)."""

    step: str
    title: str = ""
    import_timeout: float = 15.0
    default_timeout: float = 10.0
    # CPU seconds a call may spend outside MAX's compiles, the learner's own code (an infinite loop stops there);
    # a check's timeout (and import_timeout) then bounds the whole call, compiles included. None: no separate limit
    code_timeout: float | None = None
    skeleton: str | None = None  # paths relative to the repository root
    solution: str | None = None
    # words in an import failure -> the hint that explains it (e.g. a module an old API had)
    import_hints: dict[str, str] = field(default_factory=dict)
    # hooks: extra CLI options, lines printed before the checks, work done after them (sees the report)
    # modules a spare worker imports before the learner's file arrives (`watch` keeps one ready)
    preload: tuple[str, ...] = ()
    add_arguments: Callable | None = None
    notes: Callable | None = None
    prepare: Callable | None = None  # sees the Learner before the first check: work to start in the background
    after: Callable | None = None
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self):
        record = next((record for record in STEPS if record.number == self.step), None)
        self.title = self.title or (record.title if record else f"Step {self.step}")
        self.skeleton = self.skeleton or (record.skeleton if record else f"steps/step_{self.step}.py")
        self.solution = self.solution or (record.reference if record else f"solutions/solution_{self.step}.py")

    def check(
        self,
        name: str,
        *,
        timeout: float | None = None,
        slow=False,
        despite: tuple[str, ...] = (),
        always=False,
        skip_if: Callable[[object], str | None] | None = None,
    ):
        def register(function):
            check = Check(name, function, timeout or self.default_timeout, slow, despite, always, skip_if)
            self.checks.append(check)
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
        self.limit = 10.0  # CPU seconds each call may use: the running check's timeout
        self.memo: dict = {}  # per run: what one check computed and a later one reuses

    @property
    def source(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")

    def ensure_loaded(self) -> None:
        """Import the learner's file (once); raises the import failure, so a check judging the source
        of a file that does not import reports that instead."""
        self._sandbox.ensure_loaded()

    def call(self, name: str, *args, **kwargs):
        """Call the learner's top-level `name(*args, **kwargs)` in their process."""
        return self._sandbox.call(("attr", name), args, kwargs, self.limit, during=f"calling {name}")

    def probe(self, function: Callable, *args, during: str | None = None, **kwargs):
        """Run `function(learner_module, *args, **kwargs)` in the learner's process.

        `function` must be a top-level function of a checklist module; it turns whatever the
        learner's objects produce into plain data, and the judging happens back here.
        """
        target = ("probe", function.__module__, function.__name__)
        during = during or function.__name__.strip("_").replace("_", " ")
        return self._sandbox.call(target, args, kwargs, self.limit, during=during)


@dataclass
class Result:
    name: str
    status: str  # "passed", "failed" or "skipped"
    message: str
    cause: str | None = None  # failures with the same cause (a placeholder's line, a block) report it once
    seconds: float = 0.0  # wall time the check took (where a slow step spends its time)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Report:
    step: str
    title: str
    file: str
    results: list[Result]
    notes: list[str]

    @property
    def passed(self) -> bool:
        """Nothing failed (checks skipped on request do not fail a run)."""
        return all(result.status != "failed" for result in self.results)

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    def as_json(self) -> dict:
        return {
            "step": self.step,
            "title": self.title,
            "file": self.file,
            "passed": self.passed,
            "notes": self.notes,
            "checks": [
                {
                    "name": r.name,
                    "passed": r.passed,
                    "status": r.status,
                    "message": r.message,
                    "cause": r.cause,
                    "seconds": round(r.seconds, 3),
                }
                for r in self.results
            ],
        }


def checklist_module(step: str) -> str:
    """Where step `step`'s checklist lives: the module `checklist` of the step's package (tests/check/step_NN/),
    beside the judging and the learner-side probes only that step uses."""
    return f"tests.check.step_{step}.checklist"


def checklist_file(step: str) -> Path:
    """The file of `checklist_module(step)`; its folder is the step's package."""
    return REPO_ROOT.joinpath(*checklist_module(step).split(".")).with_suffix(".py")


def load_checklist(step: str) -> Checklist:
    return importlib.import_module(checklist_module(step)).checklist


def available_steps() -> list[str]:
    return [record.number for record in STEPS]


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# What a NumPy, PyTorch or MAX error raised inside the learner's code means there: (pattern, what happened,
# the likely cause). "{0}"... are the pattern's groups. Only the errors a LayerNorm learner meets.
FRAMEWORK_ERRORS = (
    (
        r"operands could not be broadcast together with shapes (.+?)\s*$",
        "NumPy cannot broadcast shapes {0} together",
        "a row statistic reduced without keepdims=True is (N,), not (N, 1), or a parameter has the wrong shape",
    ),
    (
        r"non-broadcastable output operand with shape (\S+) doesn't match the broadcast shape (\S+)",
        "An in-place operation writes a result shaped {1} into an array shaped {0}",
        "the array updated in place (+=, -=, *=, out=) must already have the result's shape",
    ),
    (
        r"cannot reshape array of size (\d+) into shape (.+)",
        "NumPy cannot reshape {0} values into shape {1}",
        "the array has the wrong size: a sum over axis 1 leaves one value per row, over axis 0 one per feature",
    ),
    (
        r"axis (-?\d+) is out of bounds for array of dimension (\d+)",
        "There is no axis {0} in a {1}-D array",
        "the array lost an axis earlier (a reduction without keepdims=True?), or has fewer than the code assumes",
    ),
    (
        r"Cannot cast ufunc '(\w+)' output from dtype\('(\w+)'\) to dtype\('(\w+)'\)",
        "An in-place {0} would write {1} values into a {2} array",
        "compute into a new array instead",
    ),
    (
        r"one of the variables needed for gradient computation has been modified by an inplace operation",
        "An in-place operation changed a tensor autograd saved for the backward",
        "compute a new tensor (y = y + ..., not y += ..., x[...] = ... or .add_())",
    ),
    (
        r"Trying to backward through the graph a second time",
        "The backward went through the same graph twice",
        "a tensor kept from an earlier call (a cache, a global, a default argument) is reused, or .backward() runs "
        "twice; build the graph afresh in each call",
    ),
    (
        r"a leaf Variable that requires grad is being used in an in-place operation",
        "An in-place operation on a tensor that requires grad (an input or a parameter)",
        "compute a new tensor instead",
    ),
    (
        r"element 0 of tensors does not require grad and does not have a grad_fn",
        "The result is cut from the autograd graph",
        "something detaches it (.detach(), .item(), .data, torch.no_grad() or a NumPy round trip); compute it with "
        "torch operations on the inputs",
    ),
    (
        r"Can't call numpy\(\) on Tensor that requires grad",
        "A tensor autograd follows is turned into a NumPy array",
        "autograd cannot follow NumPy; use torch operations",
    ),
    (
        r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)",
        "Tensors of sizes {0} and {1} do not broadcast at dimension {2}",
        "a statistic reduced without keepdim=True, or a parameter of the wrong shape",
    ),
    (
        r"mat1 and mat2 shapes cannot be multiplied \((.+?)\)",
        "A matrix product of shapes {0} does not fit",
        "the inner sizes must agree (a layer built for another size?)",
    ),
    (
        r"(?:must|to) have the same dtype|expected scalar type \w+ but found \w+",
        "Tensors of two dtypes meet (float32 and float64?)",
        "create tensors in the input's dtype, or cast with .to(x.dtype)",
    ),
    (
        r"Expected all tensors to be on the same device",
        "Tensors on different devices meet",
        "create new tensors on the input's device (x.device)",
    ),
    (
        r"Dimension out of range \(expected to be in range of \[(-?\d+), (-?\d+)\], but got (-?\d+)\)",
        "There is no dimension {2} here (the tensor has dimensions {0} to {1})",
        "the tensor lost a dimension earlier (keepdim=False?), or has fewer than the code assumes",
    ),
    (
        r"Failed to create op '(\w+)'.*neither equivalent nor broadcastable",
        "MAX cannot broadcast the inputs of {0}",
        "a statistic reduced without keeping its axis, or a parameter of the wrong shape",
    ),
)


def framework_meaning(text: str) -> tuple[str, str] | None:
    """(what happened, its likely cause) for a framework error's message, or None when it is not a known one."""
    for pattern, what, why in FRAMEWORK_ERRORS:
        match = re.search(pattern, text, re.S)
        if match:
            groups = [" and ".join(group.split()) for group in match.groups()]
            return what.format(*groups), why
    return None


def explain(error: LearnerError, path: Path) -> str:
    """Turn what went wrong in the learner's process into a one-line hint."""
    where = ""
    if error.where:
        line, code = error.where
        where = f" ({path.name}:{line}" + (f": `{code}`" if code else "") + ")"
    text = str(error)
    kind = error.exc_type
    if isinstance(error, (LearnerOverLimit, LearnerCrashed, MissingName)):
        return text[0].upper() + text[1:]
    if kind == "Fail":  # a probe's own verdict in the learner's process, e.g. "Your class has no `ln`"
        return error.detail if error.detail.endswith((".", "?", "!")) else error.detail + "."
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
    meaning = framework_meaning(error.detail)
    if meaning:
        return f"{meaning[0]}{where}: {meaning[1]}."
    return f"Your code raised {text}{where}."


def root_cause(error: LearnerError) -> str | None:
    """What makes failures "the same": an exception of one kind at one line of the learner's file, or one
    verdict of a probe (e.g. "LayerNorm has no forward()"), which every check that builds a LayerNorm meets."""
    if error.exc_type == "Fail":
        return error.detail
    return f"{error.exc_type} at line {error.where[0]} of your file" if error.exc_type and error.where else None


def _short(text: str, limit: int = 600) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def skip_reason(check: Check, options) -> str | None:
    """Why `options` (--only, --quick) or the machine (the check's `skip_if`) leave this check out, or None."""
    only = getattr(options, "only", None)
    if only and only.lower() not in check.name.lower() and not check.always:
        return f"--only {only!r} selects other checks"
    if check.slow and getattr(options, "quick", False):
        return "--quick skips the slow checks (whole-graph compiles); run without it before moving on"
    return check.skip_if(options) if check.skip_if else None


def run_checklist(
    checklist: Checklist,
    path: Path,
    options=None,
    *,
    strict: bool = False,
    on_result=None,
    on_note=None,
    cancel=None,
    spare=None,
    private: bool = False,
) -> Report:
    """Run every check of `checklist` against the file at `path`; later checks run after failures.

    `strict` (the project's own tests) lets a bug in a checklist raise instead of becoming a ❌.
    `on_result` and `on_note` see each result and note as it happens (the report streams). `cancel` (an
    Event) and `spare` (a `Spare` worker) serve `watch`: a set `cancel` raises `RunCancelled` within a poll.
    `private` (grade) runs the file with its own HOME, TMPDIR and working directory, removed afterwards.
    """
    path = Path(path)
    report = Report(checklist.step, checklist.title, display_path(path), [], [])

    def note(line: str) -> None:
        report.notes.append(line)
        if on_note:
            on_note(line)

    def record(result: Result) -> None:
        report.results.append(result)
        if on_result:
            on_result(result)

    for line in checklist.notes(options) if checklist.notes else []:
        note(line)
    scale = getattr(options, "timeout_scale", None) or float(os.environ.get(SCALE_ENV) or 1.0)
    sandbox = Sandbox(
        path,
        path.stem,
        import_timeout=checklist.import_timeout,
        code_limit=checklist.code_timeout,
        scale=scale,
        cancel=cancel,
        spare=spare,
        private=private,
    )
    with sandbox:
        learner = Learner(sandbox, path, options)
        if checklist.prepare:
            checklist.prepare(learner)
        imports = _import_check(sandbox, path, checklist.import_hints)
        record(imports)
        blocked = imports.cause
        for check in checklist.checks:
            if cancel is not None and cancel.is_set():
                raise RunCancelled
            skipped = skip_reason(check, options)
            if skipped:
                record(Result(check.name, "skipped", skipped))
                continue
            if blocked and blocked not in check.despite:
                record(Result(check.name, "failed", f"Not run: {blocked}", cause=blocked))
                continue
            learner.limit = check.timeout
            started = time.perf_counter()
            try:
                result = Result(check.name, "passed", check.run(learner) or "")
            except Fail as verdict:
                result = Result(check.name, "failed", _short(str(verdict)), cause=verdict.blocks or verdict.cause)
                blocked = verdict.blocks or blocked
            except LearnerOverLimit as error:  # it would happen again: the later checks are not run
                blocked = f"{error.during} passed a limit in an earlier check (see above)."
                result = Result(check.name, "failed", _short(explain(error, path)), cause=blocked)
            except LearnerError as error:
                result = Result(check.name, "failed", _short(explain(error, path)), cause=root_cause(error))
            except RunCancelled:
                raise
            except Exception as bug:
                if strict:
                    raise
                verdict = f"The checker could not judge this result ({type(bug).__name__}: {bug})."
                result = Result(check.name, "failed", _short(verdict))
            result.seconds = time.perf_counter() - started
            record(result)
        if checklist.after:
            learner.limit = checklist.default_timeout
            for line in checklist.after(learner, options, report) or []:
                note(line)
    return report


def _import_check(sandbox: Sandbox, path: Path, hints: dict[str, str]) -> Result:
    name, started = f"{path.name} imports", time.perf_counter()
    try:
        sandbox.ensure_loaded()
        return Result(name, "passed", "", seconds=time.perf_counter() - started)
    except LearnerError as error:
        extra = [hint for words, hint in hints.items() if words in str(error)]
        message = _short(" ".join([explain(error, path), *extra]))
        return Result(name, "failed", message, cause=NOT_IMPORTED, seconds=time.perf_counter() - started)
