"""The checker tells the truth about broken, hostile and half-finished files, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT

CORRECT_FORWARD = """
def layernorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    y = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + eps) * np.reshape(gamma, -1) + np.reshape(beta, -1)
    return y, None
"""


def run_checker(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.check", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def check_source(tmp_path: Path, source: str, *extra: str) -> subprocess.CompletedProcess:
    """The report for a file holding `source`, every failed check printed (--verbose)."""
    path = tmp_path / "submission.py"
    path.write_text(textwrap.dedent(source))
    return run_checker("01", "--file", str(path), "--verbose", *extra)


def assert_clean_failure(result: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit 1, a ❌ line carrying each phrase, a count line last, and no traceback anywhere."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "❌" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("failed")
    for phrase in phrases:
        assert phrase.lower() in result.stdout.lower(), f"{phrase!r} not in:\n{result.stdout}"


@pytest.mark.parametrize(
    "source, phrases",
    [
        pytest.param(
            "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5)\n    return x, None\n",
            ["does not parse", "submission.py:2", "Not run: the file does not import"],
            id="syntax-error",
        ),
        pytest.param(
            "import numpy as np\nimport not_a_real_module\n",
            ["An import failed", "not_a_real_module"],
            id="import-error",
        ),
        pytest.param(
            "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    raise NotImplementedError\n",
            ["Still a TODO", "submission.py:3"],
            id="todo",
        ),
        pytest.param(
            "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n"
            "    mean = None\n    return x - mean, None\n",
            ["A `None` placeholder is still in use"],
            id="none-placeholder",
        ),
        pytest.param(
            "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    return 1 / 0, None\n",
            ["ZeroDivisionError", "submission.py:3: `return 1 / 0, None`"],
            id="exception",
        ),
        pytest.param("import numpy as np\nimport sys\nsys.exit(0)\n", ["called sys.exit()"], id="sys-exit-at-import"),
        pytest.param(
            "import numpy as np\nimport os\nos._exit(0)\n", ["The process exited (code 0)"], id="os-exit-at-import"
        ),
        pytest.param(
            "import numpy as np\nimport os\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    os._exit(0)\n",
            ["The process exited (code 0): something called sys.exit() or os._exit() while calling layernorm_forward"],
            id="os-exit-in-call",
        ),
        pytest.param(
            "import numpy as np\nimport sys\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    sys.exit(0)\n",
            ["called sys.exit()"],
            id="sys-exit-in-call",
        ),
        pytest.param(
            "import numpy as np\nimport ctypes\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n"
            "    ctypes.string_at(0)\n",
            ["killed by signal SIGSEGV"],
            id="segfault",
        ),
        pytest.param(
            "import numpy as np\nimport torch\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n"
            "    return torch.from_numpy(x), None\n",
            ["is a torch.Tensor; expected a NumPy array"],
            id="returns-torch",
        ),
        pytest.param(
            "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    return x\n",
            ["must return a tuple of 2 values"],
            id="no-cache",
        ),
        pytest.param(
            "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    return x * np.nan, None\n",
            ["contains NaN"],
            id="nan",
        ),
        pytest.param("import numpy as np\n", ["your file defines no `layernorm_forward`"], id="missing-function"),
    ],
)
def test_broken_files_fail_cleanly(tmp_path, source, phrases):
    assert_clean_failure(check_source(tmp_path, source), *phrases)


@pytest.mark.slow  # waits for a time or memory limit on purpose
def test_infinite_loop_is_stopped_by_the_cpu_limit_once(tmp_path):
    result = check_source(
        tmp_path,
        "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    while True:\n        pass\n",
    )
    assert_clean_failure(
        result,
        "no answer within the time limit while calling layernorm_forward: it used",
        "s of CPU (the limit is 5 s), an infinite loop or far too slow",
        "--timeout-scale 3 (or LAYERNORM_TIMEOUT_SCALE=3)",
        "Not run: calling layernorm_forward passed a limit in an earlier check (see above).",
    )
    assert result.stdout.count("it used") == 1  # waited for once, not once per check


@pytest.mark.slow  # waits for a time or memory limit on purpose
def test_a_call_blocked_without_spinning_hits_the_wall_clock_limit(tmp_path):
    source = "import time\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    time.sleep(10**6)\n"
    result = check_source(tmp_path, source, "--timeout-scale", "0.2")  # 1 s of CPU, 6 s of wall clock
    assert_clean_failure(result, "s passed (the limit is 6 s)", "blocked on input, a lock or a sleep?")


@pytest.mark.slow  # waits for a time or memory limit on purpose
def test_infinite_loop_at_import_is_stopped(tmp_path):
    result = check_source(tmp_path, "while True:\n    pass\n")
    assert_clean_failure(result, "no answer within the time limit while importing your file")


@pytest.mark.slow  # waits for a time or memory limit on purpose
def test_a_runaway_allocation_is_stopped_by_the_memory_limit(tmp_path):
    source = (
        "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    hog = [np.ones(2**27) for _ in range(64)]  # 64 GiB, 1 GiB at a time\n    return x, None\n"
    )
    # CPU to spare (50 s): the memory limit comes first; faulting in 8 GiB took up to 20 s of system CPU on a busy VM
    result = check_source(tmp_path, source, "--timeout-scale", "10")
    assert_clean_failure(result, "GiB of memory while calling layernorm_forward (the limit")


@pytest.mark.parametrize("scale", ["0", "-1", "fast"])
def test_timeout_scale_must_be_a_positive_number(scale):
    result = run_checker("01", "--timeout-scale", scale)
    assert result.returncode == 2 and "expected a positive number" in result.stderr


def test_printing_megabytes_and_replacing_stdout_do_not_disturb_a_correct_file(tmp_path):
    source = "import sys\nimport numpy as np\nprint('x' * 5_000_000)\nsys.stdout = None\nsys.stderr = None\n"
    source += CORRECT_FORWARD.replace("    mean =", "    sys.__stdout__.write('y' * 1_000_000)\n    mean =")
    result = check_source(tmp_path, source)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_monkeypatched_numpy_cannot_forge_a_pass(tmp_path):
    source = """
    import numpy as np
    np.allclose = lambda *args, **kwargs: True
    np.testing.assert_allclose = lambda *args, **kwargs: None
    np.isfinite = lambda a: np.ones(np.shape(a), bool)
    def layernorm_forward(x, gamma, beta, eps=1e-5):
        return x * 0 + 1.0, None
    """
    result = check_source(tmp_path, source)
    assert_clean_failure(result, "differs from the float64 oracle")


def test_a_learner_object_in_the_reply_is_refused_not_unpickled(tmp_path):
    source = """
    import numpy as np
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run in the judge",))
    def layernorm_forward(x, gamma, beta, eps=1e-5):
        return Sneaky(), None
    """
    result = check_source(tmp_path, source)
    assert_clean_failure(result, "is a submission.Sneaky; expected a NumPy array")
    assert "must never run" not in result.stdout


def test_json_report_has_the_documented_shape(tmp_path):
    result = check_source(tmp_path, "import numpy as np\n" + CORRECT_FORWARD, "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["step"] == "01" and report["passed"] is True
    assert report["file"].endswith("submission.py")
    assert {"name", "passed", "message"} <= set(report["checks"][0])
    assert all(check["passed"] for check in report["checks"])


def test_json_report_says_how_long_each_check_took(tmp_path):
    slow = CORRECT_FORWARD.replace("    mean =", "    __import__('time').sleep(0.5)\n    mean =", 1)
    report = json.loads(check_source(tmp_path, "import numpy as np\n" + slow, "--json").stdout)
    seconds = [check["seconds"] for check in report["checks"]]
    assert all(isinstance(s, float) and s >= 0 for s in seconds)
    assert max(seconds) >= 0.5  # the checks that call layernorm_forward wait for it
    assert min(seconds) < 0.5  # the import check does not


def test_grading_several_files_gives_one_json_line_each_and_fails_if_any_fails(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("import numpy as np\n" + CORRECT_FORWARD)
    bad.write_text("import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n    return x, None\n")
    result = run_checker("01", "--file", str(good), str(bad), "--json")
    assert result.returncode == 1
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["passed"] for r in reports] == [True, False]
    assert [Path(r["file"]).name for r in reports] == ["good.py", "bad.py"]


def test_a_folder_given_as_the_file_means_its_file_named_like_the_skeleton(tmp_path):
    (tmp_path / "step_01.py").write_text("import numpy as np\n" + CORRECT_FORWARD)
    result = run_checker("01", "--file", str(tmp_path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(json.loads(result.stdout)["file"]).name == "step_01.py"


@pytest.mark.parametrize(
    "args, message",
    [
        (["99"], "no step 99"),
        (["01", "--file", "no/such/file.py"], "does not exist"),
        (["01", "--file", "docs"], "is a folder without step_01.py"),
        (["01", "--solution", "--file", "x.py"], "not allowed with argument"),
        (["one"], "expected a step number"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = run_checker(*args)
    assert result.returncode == 2
    assert message in result.stderr


def _tree_fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_checking_never_writes_into_steps():
    steps = REPO_ROOT / "steps"
    before = _tree_fingerprint(steps)
    for step in ("01", "02"):
        run_checker(step, "--file", f"steps/step_{step}.py")  # --file: the learner's progress stays as it is
    assert _tree_fingerprint(steps) == before


@pytest.mark.slow  # fills memory on purpose
def test_a_time_limit_passed_with_memory_near_its_limit_is_named_as_the_allocation():
    """Where pages are slow to hand out, a huge allocation passes the time limit before the memory limit."""
    from tests.check.sandbox import MEMORY_LIMIT, LearnerOutOfMemory, _Watch

    fill = int(MEMORY_LIMIT * 0.6) // 8  # float64s: past half the limit, short of it
    hog = f"import numpy as np\nx = np.ones({fill})\nprint('ready', flush=True)\nwhile True: pass\n"
    process = subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        watch = _Watch(process.pid, cpu_limit=0.5, during="calling layernorm_forward")
        problem = None
        while problem is None:
            time.sleep(0.05)
            problem = watch.problem()
        assert isinstance(problem, LearnerOutOfMemory), problem
        assert "GiB of memory when it passed its time limit while calling layernorm_forward" in str(problem)
    finally:
        process.kill()
        process.wait()
