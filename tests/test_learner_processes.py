"""No learner process outlives the checker, however the checker ends; time limits stop a loop in seconds, compiles
aside; `grade` runs each submission with a HOME, TMPDIR and working directory of its own.

The learner files are step 01's (NumPy: fast). A process is "left" when its command line names the learner's file:
the worker has it, and so has the child the looping file starts (a process of the learner's own).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.check.engine import REPO_ROOT
from tests.check.sandbox import LearnerTimeout, Sandbox

SOLUTION = (REPO_ROOT / "solutions" / "solution_01.py").read_text()
FORWARD = "    # ANCHOR: forward\n"
# The checker as `python -m tests.check`, with Ctrl-C's default handling restored: a test run in the background
# (a shell without job control) starts with SIGINT ignored, and the checker keeps an ignored SIGINT ignored.
CHECKER = [
    sys.executable,
    "-c",
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'tests.check'; runpy.run_module('tests.check', run_name='__main__', alter_sys=True)",
]
APPEARS = 120  # seconds a busy machine may take to start the checker and reach the learner's loop
LOOP_FOR_LONG = ("--timeout-scale", "10")  # 50 s of CPU: the signal comes long before the limit, however busy
GONE = 2.0  # seconds after the checker's exit by which every learner process must be gone


def before_the_forward(code: str) -> str:
    assert FORWARD in SOLUTION
    return SOLUTION.replace(FORWARD, code + FORWARD)


def looping_file(folder: Path, name: str = "loops.py") -> Path:
    """A step 01 file whose forward starts a child of its own (named after the file), then loops forever."""
    path = folder / name
    path.write_text(
        before_the_forward(
            "    import subprocess, sys\n"
            f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {str(path) + '-child'!r}])\n"
            "    while True:\n"
            "        pass\n"
        )
    )
    return path


def processes_naming(path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(path) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def start(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*CHECKER, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until_looping(checker: subprocess.Popen, *files: Path) -> None:
    """Until every file's forward has started its child: each worker is inside the infinite loop."""

    def looping() -> bool:
        assert checker.poll() is None, "the checker ended before the learner's code looped:\n" + "".join(
            checker.communicate()
        )
        return all(processes_naming(Path(str(f) + "-child")) for f in files)

    wait_for(looping, APPEARS, "the learner's forward started looping")


def assert_nothing_left(*files: Path) -> None:
    """Polls for GONE seconds: a learner process may take a moment to be reaped on a loaded machine."""
    end = time.monotonic() + GONE
    while any(processes_naming(f) for f in files) and time.monotonic() < end:
        time.sleep(0.05)
    left = [(p.pid, p.info["cmdline"]) for f in files for p in processes_naming(f)]
    assert left == [], f"learner processes left {GONE} s after the checker ended: {left}"


@contextlib.contextmanager
def checking(*args: str, files: list[Path], env: dict | None = None):
    """The checker started on `args`; afterwards, whatever happened, it and any process naming `files` are killed
    (a failing test must not leave loops running)."""
    checker = start(*args, env=env)
    try:
        yield checker
    finally:
        checker.kill()
        checker.communicate()
        for process in [p for f in files for p in processes_naming(f)]:
            process.kill()


# -- the checker ends, the learner's processes end ----------------------------------------------------------------
@pytest.mark.parametrize(
    "signum, code",
    [(signal.SIGTERM, 128 + 15), (signal.SIGHUP, 128 + 1), (signal.SIGINT, 130), (signal.SIGKILL, -9)],
    ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"],
)
def test_a_checker_ended_by_a_signal_leaves_no_learner_process(tmp_path, signum, code):
    path = looping_file(tmp_path)
    with checking("01", "--file", str(path), *LOOP_FOR_LONG, files=[path]) as checker:
        wait_until_looping(checker, path)
        checker.send_signal(signum)
        out, err = checker.communicate(timeout=60)
        assert checker.returncode == code, out + err
        assert_nothing_left(path)
    assert "Traceback" not in out + err
    if signum == signal.SIGINT:  # Ctrl-C: one line, no traceback, exit 130
        assert err.strip().splitlines() == ["Interrupted: the checks stopped."], err


def private_folders(temp: Path) -> list[Path]:
    return sorted(temp.glob("layernorm-check-*"))


@pytest.mark.parametrize(
    "signum, code",
    [(signal.SIGINT, 130), (signal.SIGTERM, 128 + 15), (signal.SIGKILL, -9)],
    ids=["SIGINT", "SIGTERM", "SIGKILL"],
)
def test_grade_interrupted_leaves_no_learner_process(tmp_path, signum, code):
    subs, temp = tmp_path / "subs", tmp_path / "temp"
    subs.mkdir()
    temp.mkdir()
    files = [looping_file(subs, "alice.py"), looping_file(subs, "bob.py")]
    env = dict(os.environ, TMPDIR=str(temp))  # where grade makes each submission's private folder
    grade = ("grade", "01", str(subs), "--out", str(tmp_path / "grades"), "--jobs", "2", *LOOP_FOR_LONG)
    with checking(*grade, files=files, env=env) as checker:
        wait_until_looping(checker, *files)
        assert len(private_folders(temp)) == 2  # one per submission being checked
        checker.send_signal(signum)
        out, err = checker.communicate(timeout=60)
        assert checker.returncode == code, out + err
        assert_nothing_left(*files)
    if signum != signal.SIGKILL:  # a way out: the private folders are removed on it
        assert "Traceback" not in out + err
        assert private_folders(temp) == []
    if signum == signal.SIGINT:
        assert err.strip().splitlines() == [
            f"Interrupted: what was graded is kept in {tmp_path / 'grades'}; run the same command to go on."
        ]


# -- grading strangers' files ---------------------------------------------------------------------------------------
HOSTILE_MARKS = """
import os
import tempfile
from pathlib import Path


def _leave_marks():  # a marker in HOME, the temporary folder and the working directory; logs where they went
    folders = [os.path.expanduser("~"), tempfile.gettempdir(), os.getcwd()]
    for folder in folders:
        Path(folder, "hostile-marker").write_text("was here")
    with open(os.environ["HOSTILE_LOG"], "a") as log:
        log.writelines(folder + "\\n" for folder in folders)


_leave_marks()
"""


def grade(submissions: Path, out: Path, env: dict, *options: str) -> subprocess.CompletedProcess:
    """`python -m tests.check grade 01` of a folder of submissions, with `env`."""
    command = [*CHECKER, "grade", "01", str(submissions), "--out", str(out), *options]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_graded_submission_writes_into_private_folders_that_are_removed(tmp_path):
    subs, home, temp, log = tmp_path / "subs", tmp_path / "home", tmp_path / "temp", tmp_path / "log"
    for folder in (subs, home, temp):
        folder.mkdir()
    (subs / "hostile.py").write_text(before_the_forward("    _leave_marks()\n") + HOSTILE_MARKS)
    env = dict(os.environ, HOME=str(home), TMPDIR=str(temp), HOSTILE_LOG=str(log))
    try:
        graded = grade(subs, tmp_path / "grades", env, "--jobs", "1")
    finally:
        in_the_repository = REPO_ROOT / "hostile-marker"
        left_in_the_repository = in_the_repository.exists()
        in_the_repository.unlink(missing_ok=True)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    with (tmp_path / "grades" / "gradebook.csv").open(newline="") as file:
        assert [row["passed"] for row in csv.DictReader(file)] == ["1"]  # judged as any file: it is correct
    written = set(log.read_text().splitlines())  # at import and in every call
    assert written and not written & {str(home), str(temp), str(REPO_ROOT)}
    assert [path for path in written if Path(path).exists()] == []  # removed after the grading
    assert not left_in_the_repository
    assert list(home.rglob("hostile-marker")) == list(temp.rglob("hostile-marker")) == []
    assert private_folders(temp) == []


def test_graded_submissions_share_the_graders_max_kernel_cache(tmp_path):
    """A private HOME must not mean a cold MAX cache: every submission would compile MAX's kernels again."""
    subs, home, temp, log = tmp_path / "subs", tmp_path / "home", tmp_path / "temp", tmp_path / "log"
    for folder in (subs, home / ".modular", temp):  # where ~/.modular exists, MAX 26.7 caches there, not in ~/.cache
        folder.mkdir(parents=True)
    where_max_caches = "from max._core import engine\nprint(engine.max_cache_dir(), file=open({!r}, 'a'))\n"
    (subs / "reads_the_cache.py").write_text(SOLUTION + where_max_caches.format(str(log)))
    env = dict(os.environ, HOME=str(home), TMPDIR=str(temp))
    graded = grade(subs, tmp_path / "grades", env, "--only", "worked example 1")
    assert graded.returncode == 0, graded.stdout + graded.stderr
    graders = subprocess.run(
        [sys.executable, "-c", where_max_caches.format(str(tmp_path / "graders"))], env=env, timeout=300, check=True
    )
    assert graders.returncode == 0
    assert log.read_text().split() == [(tmp_path / "graders").read_text().strip()]
    assert str(temp) not in log.read_text()


# -- time limits ---------------------------------------------------------------------------------------------------
def spin(module, seconds: float, compiling: bool) -> float:
    """A probe (it runs in the worker): `seconds` of CPU, marked as compiling or not; returns the CPU it used."""
    from tests.check.worker import compiling as marked

    started = time.process_time()
    with marked() if compiling else contextlib.nullcontext():
        while time.process_time() - started < seconds:
            pass
    return time.process_time() - started


def test_time_spent_compiling_is_not_the_learners_code_limit(tmp_path):
    path = tmp_path / "solution.py"
    path.write_text(SOLUTION)
    with Sandbox(path, "solution", import_timeout=30, code_limit=1.0) as sandbox:
        # 3 s of CPU marked as compiling: within the call's 60 s, though three times the code's limit
        assert sandbox.call(("probe", __name__, "spin"), (3.0, True), {}, 60.0, "compiling") >= 3.0
        with pytest.raises(LearnerTimeout, match=r"no answer within the time limit while spinning"):
            sandbox.call(("probe", __name__, "spin"), (3.0, False), {}, 60.0, "spinning")


def compilers_metered(module) -> list[str]:
    """A probe: the MAX and Mojo functions the worker counts as compiling, once their modules are imported."""
    import importlib

    from tests.check.worker import COMPILERS

    found = []
    for name, functions in COMPILERS.items():
        imported = importlib.import_module(name)
        for dotted in functions:
            target = imported
            for part in dotted.split("."):
                target = getattr(target, part)
            if hasattr(target, "__wrapped__"):
                found.append(f"{name}.{dotted}")
    return found


def test_max_and_mojo_compiles_are_metered_in_the_worker(tmp_path):
    """If MAX renames the functions that compile, this fails: its compiles would count against the code's limit."""
    path = tmp_path / "solution.py"
    path.write_text(SOLUTION)
    with Sandbox(path, "solution", import_timeout=60) as sandbox:
        metered = sandbox.call(("probe", __name__, "compilers_metered"), (), {}, 60.0, "importing MAX")
    assert metered == [
        "max.engine.api.InferenceSession.compile",
        "max.engine.api.InferenceSession.init_all",
        "mojo.paths.subprocess_run_mojo",
    ]
