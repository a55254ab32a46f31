"""The learner's loop, driven in a temporary copy of the repository: watch, status, hint, reset, and a
report whose cascades collapse to their cause."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.check import progress
from tests.check.engine import REPO_ROOT, available_steps, load_checklist
from tests.working_tree import copy_working_tree

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def total_checks(step: str) -> int:
    """The checks a step's report counts: its checklist's and the import check."""
    return 1 + len(load_checklist(step).checks)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The working tree as files (what git would commit), committed in a fresh repository of its own."""
    root = tmp_path_factory.mktemp("template") / "repo"
    copy_working_tree(root)
    env = dict(os.environ, **GIT)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "skeletons"]):
        subprocess.run(command, cwd=root, check=True, env=env)
    return root


@pytest.fixture
def repo(template, tmp_path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def checker(repo: Path, *args: str, stdin=subprocess.DEVNULL, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.check", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        stdin=stdin,
        timeout=timeout,
    )


def solve(repo: Path, step: str) -> None:
    shutil.copy(repo / "solutions" / f"solution_{step}.py", repo / "steps" / f"step_{step}.py")


# -- status --------------------------------------------------------------------------------------------
def test_status_tells_not_started_in_progress_and_done_and_reruns_only_what_changed(repo):
    first = checker(repo)  # no argument: the status
    assert first.returncode == 0
    assert all("not started" in line for line in first.stdout.splitlines()[1:7]), first.stdout
    solve(repo, "01")
    step_02 = repo / "steps" / "step_02.py"
    solved = (repo / "solutions" / "solution_02.py").read_text()
    step_02.write_text(solved.replace("dbeta = dy.sum(axis=0)", "dbeta = -dy.sum(axis=0)"))
    second = checker(repo, "status")
    rows = {line[:2]: line for line in second.stdout.splitlines() if line[:2].isdigit()}
    assert rows["01"].endswith("done ✅"), second.stdout
    assert "in progress (" in rows["02"] and f"/{total_checks('02')} checks)" in rows["02"], second.stdout
    assert rows["03"].endswith("not started")
    assert "(checking step 01…)" in second.stderr and "(checking step 02…)" in second.stderr
    third = checker(repo, "status")  # nothing changed: nothing is run again
    assert "(checking" not in third.stderr and third.stdout == second.stdout
    step_02.write_text(solved)
    fourth = checker(repo, "status")
    assert "(checking step 02…)" in fourth.stderr and "(checking step 01…)" not in fourth.stderr
    assert "02    LayerNorm backward in NumPy" in fourth.stdout and "done ✅" in fourth.stdout.splitlines()[2]


def test_status_survives_a_corrupt_cache(repo):
    solve(repo, "01")
    assert checker(repo, "status").returncode == 0
    for entry in (repo / ".checker" / "results").glob("*.json"):
        entry.write_text('{"fingerprint": "')  # a half-written file
    (repo / ".checker" / "hints.json").write_text("[]")
    again = checker(repo, "status")
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "(checking step 01…)" in again.stderr and "done ✅" in again.stdout.splitlines()[1]


def test_status_refresh_reruns_every_started_step(repo):
    solve(repo, "01")
    checker(repo, "status")
    assert "(checking step 01…)" in checker(repo, "status", "--refresh").stderr


# -- hints -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step", available_steps())
def test_every_step_has_three_to_five_hint_levels_from_idea_to_lines(step):
    levels = progress.hint_levels(step)
    assert 3 <= len(levels) <= 5
    assert all(title and len(text) > 80 for title, text in levels)
    assert "```" in levels[-1][1] or "`" in levels[-1][1]  # the last level points at the exact code


def test_hint_levels_come_in_order_and_are_remembered_per_step(repo):
    titles = [title for title, _ in progress.hint_levels("03")]
    shown = [checker(repo, "hint", "03").stdout.splitlines()[0] for _ in range(len(titles) + 1)]
    assert shown[:-1] == [f"Hint {i} of {len(titles)} for step 03: {t}" for i, t in enumerate(titles, 1)]
    assert shown[-1] == shown[-2]  # the last level again, with the way to the solution
    assert "make compare NN=03" in checker(repo, "hint", "03").stdout
    assert checker(repo, "hint", "01").stdout.startswith("Hint 1 of")  # another step starts at its first level


def test_hint_without_a_step_is_for_the_step_you_are_on(repo):
    solve(repo, "01")
    checker(repo, "status")
    assert checker(repo, "hint").stdout.startswith("Hint 1 of 4 for step 02:")


# -- reset -----------------------------------------------------------------------------------------------
def test_reset_keeps_a_backup_equal_to_your_file_and_restores_the_skeleton(repo):
    mine = repo / "steps" / "step_01.py"
    skeleton = mine.read_bytes()
    mine.write_text("# my work, half done\nimport numpy as np\n")
    result = checker(repo, "reset", "01", "--yes")
    assert result.returncode == 0, result.stderr
    assert mine.read_bytes() == skeleton
    folder = repo / result.stdout.split("saved in ", 1)[1].split("/\n", 1)[0]
    assert (folder / "steps" / "step_01.py").read_text() == "# my work, half done\nimport numpy as np\n"
    again = checker(repo, "reset", "01", "--yes")  # a second reset keeps the first backup
    assert folder.exists() and "skeleton already" in again.stdout


def test_reset_of_a_folder_step_restores_every_file(repo):
    kernel = repo / "steps" / "step_06" / "layer_norm.mojo"
    glue = repo / "steps" / "step_06" / "step_06.py"
    originals = kernel.read_bytes(), glue.read_bytes()
    kernel.write_text("# mine\n")
    glue.unlink()
    assert checker(repo, "reset", "06", "--yes").returncode == 0
    assert (kernel.read_bytes(), glue.read_bytes()) == originals
    backups = list((repo / ".checker" / "backups").rglob("layer_norm.mojo"))
    assert [b.read_text() for b in backups] == ["# mine\n"]


def test_reset_asks_first_and_changes_nothing_without_an_answer(repo):
    mine = repo / "steps" / "step_01.py"
    mine.write_text("# my work\n")
    refused = checker(repo, "reset", "01")  # stdin is not a terminal and there is no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert mine.read_text() == "# my work\n" and not (repo / ".checker" / "backups").exists()


def test_reset_without_the_skeleton_in_git_history_changes_nothing(repo):
    shutil.rmtree(repo / ".git")  # a download without git
    mine = repo / "steps" / "step_01.py"
    mine.write_text("# my work\n")
    result = checker(repo, "reset", "01", "--yes")
    assert result.returncode == 1 and "nothing was changed" in result.stderr
    assert mine.read_text() == "# my work\n"


def test_the_skeleton_manifest_names_the_shipped_files():
    """`reset` finds each skeleton in git by this blob id: it must be the file as shipped."""
    shipped = progress.manifest()
    for relative, blob in shipped.items():
        assert progress.blob_id((REPO_ROOT / relative).read_bytes()) == blob, (
            f"{relative} changed: run `python -m tests.check.progress` to record the new skeleton"
        )
    assert sorted(shipped) == sorted(
        str(p.relative_to(REPO_ROOT)) for s in available_steps() for p in progress.learner_files(s)
    )


# -- the report's cascades -------------------------------------------------------------------------------
def test_a_cascade_collapses_to_its_cause_and_json_keeps_every_check(repo):
    report = checker(repo, "01")
    failed = [line for line in report.stdout.splitlines() if line.startswith("❌")]
    assert len(failed) == 1, report.stdout
    assert "more checks not judged until this is fixed (AttributeError at line" in report.stdout
    verbose = checker(repo, "01", "--verbose")
    assert sum(line.startswith("❌") for line in verbose.stdout.splitlines()) == report.stdout.count("❌") + int(
        report.stdout.split("… ")[1].split(" more")[0]
    )
    data = json.loads(checker(repo, "01", "--json").stdout)
    assert sum(c["status"] == "failed" for c in data["checks"]) == len(verbose.stdout.split("❌")) - 1


def test_a_function_returning_none_is_reported_once(repo):
    step_file = repo / "steps" / "step_01.py"
    source = step_file.read_text(encoding="utf-8")
    step_file.write_text(source.replace("def layernorm_forward(", "def _unused(", 1) + NONE_FORWARD, encoding="utf-8")
    report = checker(repo, "01")
    failed = [line for line in report.stdout.splitlines() if line.startswith("❌")]
    hints = [line for line in report.stdout.splitlines() if line.strip().startswith("↳")]
    assert sum("returned None" in hint for hint in hints) == 1, report.stdout
    assert len(failed) <= 2, report.stdout  # the first None, and a probe that unpacked it (its own cause)
    assert "more checks not judged until this is fixed (layernorm_forward returned None;" in report.stdout


NONE_FORWARD = """

def layernorm_forward(x, gamma, beta, eps=1e-5):
    return None
"""


# -- watch -------------------------------------------------------------------------------------------------
class Watch:
    """`python -m tests.check watch` in the copy, its output read line by line."""

    def __init__(self, repo: Path, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.check", "watch", *args],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def expect(self, text: str, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; seen:\n{''.join(self.seen[-30:])}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def workers_of(repo: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "tests.check.worker" in cmdline and str(repo) in cmdline:
            found.append(process)
    return found


def test_watch_rechecks_on_save_in_place_and_by_rename_then_moves_on(repo):
    mine = repo / "steps" / "step_01.py"
    watch = Watch(repo)  # starts at the first step that does not pass: 01
    try:
        watch.expect("── step 01 of 6")
        watch.expect(f"step 1 of 6 · 2/{total_checks('01')} checks")
        mine.write_text(mine.read_text() + "\n# saved in place\n")
        watch.expect("(saved: checking again)")
        watch.expect(f"step 1 of 6 · 2/{total_checks('01')} checks")
        replacement = mine.with_name(".step_01.py.swp")  # what vim and JetBrains do: write aside, then rename
        replacement.write_text((repo / "solutions" / "solution_01.py").read_text())
        os.replace(replacement, mine)
        watch.expect("(saved: checking again)")
        watch.expect(f"step 1 of 6 · {total_checks('01')}/{total_checks('01')} checks")
        watch.expect("Step 01 passes every check ✅ — on to step 02.")
        watch.expect("── step 02 of 6")
        watch.expect("step 2 of 6 ·")
    finally:
        code = watch.stop()
    assert code == 0
    assert workers_of(repo) == []


def test_watch_cancels_a_run_when_a_file_is_saved_during_it(repo):
    mine = repo / "steps" / "step_01.py"
    slow = (
        (repo / "solutions" / "solution_01.py")
        .read_text()
        .replace(
            "    # ANCHOR: forward",
            "    import time\n    time.sleep(60)  # each call: far slower than a save\n    # ANCHOR: forward",
        )
    )
    mine.write_text(slow)
    watch = Watch(repo, "01")
    try:
        watch.expect("✅ step_01.py imports")
        time.sleep(1)  # the first check is now waiting for the sleeping call
        before = workers_of(repo)  # the one running the checks, and a spare for the next phase
        assert before
        solve(repo, "01")
        watch.expect("(saved: checking again)")
        watch.expect(f"step 1 of 6 · {total_checks('01')}/{total_checks('01')} checks", timeout=60)
        assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in before)
    finally:
        assert watch.stop() == 0
    assert workers_of(repo) == []
