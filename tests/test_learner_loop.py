"""The learner's loop, driven in a temporary copy of the repository: watch, status, hint, reset, and a
report whose cascades collapse to their cause."""

from __future__ import annotations

import argparse
import datetime
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


ONE_FAILING = f"step 1 of 6 · {total_checks('01') - 1}/{total_checks('01')} checks"  # the watch's line: one ❌ in 01


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
def status_json(repo: Path) -> dict:
    result = checker(repo, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["step"]: entry for entry in json.loads(result.stdout)["steps"]}


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
    ones = total_checks("01")
    assert rows["01"].endswith("done ✅") and f" {ones}/{ones} " in rows["01"], second.stdout
    assert rows["02"].endswith("in progress") and f"/{total_checks('02')} " in rows["02"], second.stdout
    assert rows["03"].endswith("not started")
    assert "(checking step 01: not checked here yet…)" in second.stderr.splitlines()
    assert "(checking step 02: not checked here yet…)" in second.stderr.splitlines()
    before = status_json(repo)  # nothing changed: nothing is run again
    third = checker(repo, "status", "--json")
    assert "(checking" not in third.stderr and [s["attempts"] for s in before.values()] == [1, 1, 0, 0, 0, 0]
    assert {s: e["state"] for s, e in before.items()} == {
        "01": "done",
        "02": "in progress",
        **{s: "not started" for s in ("03", "04", "05", "06")},
    }
    step_02.write_text(solved)
    fourth = checker(repo, "status")
    assert "(checking step 02: its files or the checker changed since its last check…)" in fourth.stderr
    assert "(checking step 01" not in fourth.stderr
    assert [line for line in fourth.stdout.splitlines() if line.startswith("02")][0].endswith("done ✅")
    assert status_json(repo)["02"]["attempts"] == 2


def test_status_survives_a_corrupt_cache(repo):
    solve(repo, "01")
    assert checker(repo, "status").returncode == 0
    for entry in (repo / ".checker" / "results").glob("*.json"):
        entry.write_text('{"fingerprint": "')  # a half-written file
    (repo / ".checker" / "hints.json").write_text("[]")
    (repo / ".checker" / "progress.json").write_text('{"steps": {"01": "three"}')
    again = checker(repo, "status")
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "(checking step 01" in again.stderr and "done ✅" in again.stdout.splitlines()[1]


def test_status_refresh_reruns_every_started_step(repo):
    solve(repo, "01")
    checker(repo, "status")
    assert "(checking step 01: --refresh…)" in checker(repo, "status", "--refresh").stderr


def set_times(repo: Path, step: str, **times: str | None) -> None:
    path = repo / ".checker" / "progress.json"
    data = json.loads(path.read_text())
    data["steps"][step].update(times)
    path.write_text(json.dumps(data))


def test_status_counts_check_runs_and_the_time_to_the_first_pass(repo):
    mine = repo / "steps" / "step_01.py"
    mine.write_text(mine.read_text() + "\n# started: a first run that fails\n")
    assert checker(repo, "01").returncode == 1
    assert checker(repo, "01", "--solution").returncode == 0  # not a run of your file: not counted
    assert checker(repo, "01", "--quick").returncode == 1  # not every check: not counted
    after_one = status_json(repo)["01"]
    assert (after_one["attempts"], after_one["state"], after_one["checks_total"]) == (
        1,
        "in progress",
        total_checks("01"),
    )
    solve(repo, "01")
    assert checker(repo, "01").returncode == 0
    done = status_json(repo)["01"]
    assert (done["attempts"], done["state"], done["checks_passed"]) == (2, "done", total_checks("01"))
    assert 0 <= done["seconds_spent"] < 60

    set_times(repo, "01", first_check="2025-03-01T09:00:00Z", first_pass="2025-03-01T11:05:00Z")
    assert checker(repo, "01").returncode == 0  # a later run counts, but the first pass stays the first
    assert status_json(repo)["01"]["seconds_spent"] == 2 * 3600 + 5 * 60
    row = [line for line in checker(repo, "status").stdout.splitlines() if line.startswith("01")][0]
    assert "  3  " in row and "2 h 05 min" in row, row

    (repo / "steps" / "step_02.py").write_text("import numpy as np\n")
    assert checker(repo, "02").returncode == 1
    three_hours_ago = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=3)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    set_times(repo, "02", first_check=three_hours_ago)  # never passed: the time runs to now
    assert abs(status_json(repo)["02"]["seconds_spent"] - 3 * 3600) < 120


def test_the_progress_file_is_committed_and_follows_the_learner_to_another_machine(repo, tmp_path):
    solve(repo, "01")
    step_02 = repo / "steps" / "step_02.py"
    step_02.write_text((repo / "solutions" / "solution_02.py").read_text().replace("dy.sum(axis=0)", "0 * dy"))
    assert checker(repo, "01").returncode == 0 and checker(repo, "02").returncode == 1
    record = repo / ".checker" / "progress.json"
    text = record.read_text()
    assert str(repo) not in text and str(Path.home()) not in text and str(tmp_path) not in text
    assert text == json.dumps(json.loads(text), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    ignored = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", ".checker"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "?? .checker/progress.json" in ignored  # git offers it for a commit
    assert all(line.startswith("!! ") for line in ignored if "progress.json" not in line)  # the cache is not
    env = dict(os.environ, **GIT)
    subprocess.run(["git", "add", "steps", ".checker/progress.json"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "my progress"], cwd=repo, check=True, env=env)

    other = tmp_path / "other-machine"
    subprocess.run(["git", "clone", "-q", str(repo), str(other)], check=True)
    there = checker(other, "status", "--json")
    assert "(checking" not in there.stderr  # the recorded verdicts hold for the same files
    steps = {entry["step"]: entry for entry in json.loads(there.stdout)["steps"]}
    assert (steps["01"]["state"], steps["01"]["source"], steps["01"]["attempts"]) == ("done", "progress file", 1)
    assert (steps["02"]["state"], steps["02"]["source"]) == ("in progress", "progress file")
    (other / "steps" / "step_02.py").write_text((other / "solutions" / "solution_02.py").read_text())
    changed = checker(other, "status", "--json")
    assert "(checking step 02" in changed.stderr and "(checking step 01" not in changed.stderr
    steps = {entry["step"]: entry for entry in json.loads(changed.stdout)["steps"]}
    assert (steps["02"]["state"], steps["02"]["source"], steps["02"]["attempts"]) == ("done", "checked now", 2)


def gpu_less_step_06_report() -> dict:
    """Step 06 passing on a machine without a GPU: its GPU checks skipped by the engine, with gpu_skip's reason."""
    from tests.check.engine import load_checklist, skip_reason
    from tests.check.step_06 import judging

    checklist, saved = load_checklist("06"), judging.visible_gpu
    judging.visible_gpu = lambda: None  # the machine's answer, whatever this machine is
    try:
        options = argparse.Namespace(device="auto")
        skips = {check.name: skip_reason(check, options) for check in checklist.checks}
    finally:
        judging.visible_gpu = saved
    checks = [
        {"name": n, "status": "skipped" if why else "passed", "passed": not why, "message": why or "", "cause": None}
        for n, why in skips.items()
    ]
    assert sum(c["status"] == "skipped" for c in checks) == 3
    report = {"step": "06", "title": checklist.title, "file": "steps/step_06/step_06.py", "passed": True}
    return {**report, "notes": [], "checks": checks}


def record_report(repo: Path, step: str, report: dict) -> None:
    """Stores `report` as the step's last results in the copy (what a run of the checker there would store)."""
    code = (
        "import json, sys; from tests.check import progress; progress.store_report(sys.argv[1], json.load(sys.stdin))"
    )
    subprocess.run([sys.executable, "-c", code, step], cwd=repo, input=json.dumps(report), text=True, check=True)


GPU_LABEL = "CPU part done ✅; GPU part not checked (no GPU here)"


def test_step_06_done_without_a_gpu_says_its_gpu_part_was_not_checked(repo):
    glue = repo / "steps" / "step_06" / "step_06.py"
    glue.write_text(glue.read_text() + "\n# started\n")
    record_report(repo, "06", gpu_less_step_06_report())
    table = checker(repo, "status").stdout
    assert [line for line in table.splitlines() if line.startswith("06")][0].endswith(GPU_LABEL), table
    markdown = checker(repo, "status", "--markdown").stdout
    assert [line for line in markdown.splitlines() if line.startswith("| 06")][0].endswith(f"| {GPU_LABEL} |")
    assert status_json(repo)["06"]["untested"] == {"GPU": "no GPU here"}
    report = gpu_less_step_06_report()
    for check in report["checks"]:
        if check["status"] == "skipped":
            check["message"] = "--quick skips the slow checks (whole-graph compiles); run without it before moving on"
    record_report(repo, "06", report)  # skipped on request, not for want of a GPU: nothing to tell
    assert [line for line in checker(repo, "status").stdout.splitlines() if line.startswith("06")][0].endswith(
        "  done ✅"
    )


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


@pytest.mark.parametrize("step", available_steps())
def test_the_checks_a_hint_level_names_are_checks_of_its_step(step):
    names = [check.name.lower() for check in load_checklist(step).checks]
    sections = progress.hint_sections(step)
    assert any(parts for _, _, parts in sections), f"no level of step {step}'s hints names a check"
    for title, text, parts in sections:
        assert "<!--" not in text  # the names are data for the ladder, not part of the hint shown
        for part in parts:
            assert any(part.lower() in name for name in names), f"{title!r} names {part!r}: no such check"


UNSTABLE_VARIANCE = (
    "var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
    "var = (x * x).mean(axis=1, keepdims=True) - mean**2",
)
LOOP_OVER_ROWS = (
    "    y = (x - mean) * rstd ",
    "    y = (np.stack([row for row in x]) - mean) * rstd ",
)


def write_step_01(repo: Path, *changes: tuple[str, str]) -> None:
    """Step 01 solved, then each (old, new) replacement: a file with one known mistake."""
    text = (repo / "solutions" / "solution_01.py").read_text()
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    (repo / "steps" / "step_01.py").write_text(text)


def test_the_hint_ladder_starts_at_the_level_about_the_failing_check(repo):
    write_step_01(repo, UNSTABLE_VARIANCE)  # only the large-mean check fails
    assert checker(repo, "01").returncode == 1
    titles = [title for title, _ in progress.hint_levels("01")]
    first = checker(repo, "hint").stdout.splitlines()
    assert first[0] == f"Hint 3 of 4 for step 01: {titles[2]}" and "numerically stable" in first[1]
    assert checker(repo, "hint").stdout.startswith(f"Hint 4 of 4 for step 01: {titles[3]}")
    write_step_01(repo, LOOP_OVER_ROWS)  # another mistake: its own ladder, from its own level
    assert checker(repo, "01").returncode == 1
    assert checker(repo, "hint", "01").stdout.startswith(f"Hint 2 of 4 for step 01: {titles[1]}")


# -- reset -----------------------------------------------------------------------------------------------
def test_reset_keeps_a_backup_equal_to_your_file_and_restores_the_skeleton(repo):
    mine = repo / "steps" / "step_01.py"
    skeleton = mine.read_bytes()
    mine.write_text("# my work, half done\nimport numpy as np\n")
    result = checker(repo, "reset", "01", "--yes")
    assert result.returncode == 0, result.stderr
    assert mine.read_bytes() == skeleton
    folder = repo / result.stdout.split("saved in ", 1)[1].split("/ ", 1)[0]
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


def test_reset_all_saves_every_started_step_and_restore_brings_the_last_backup_back(repo):
    mine_01, mine_02 = repo / "steps" / "step_01.py", repo / "steps" / "step_02.py"
    skeletons = mine_01.read_text(), mine_02.read_text()
    step_03 = (repo / "steps" / "step_03.py").read_bytes()
    mine_01.write_text("# my step 01\n")
    mine_02.write_text("# my step 02\n")
    refused = checker(repo, "reset", "--all")  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr and mine_01.read_text() == "# my step 01\n"
    assert "--yes" in (repo / "README.md").read_text()  # the way past that refusal is documented
    done = checker(repo, "reset", "--all", "--yes")
    assert done.returncode == 0, done.stderr
    assert (mine_01.read_text(), mine_02.read_text()) == skeletons
    assert (repo / "steps" / "step_03.py").read_bytes() == step_03  # not started: left alone, no backup
    backups = repo / ".checker" / "backups"
    assert sorted(p.read_text() for p in backups.rglob("step_0*.py")) == ["# my step 01\n", "# my step 02\n"]

    restored = checker(repo, "restore", "01")
    assert restored.returncode == 0, restored.stderr
    assert mine_01.read_text() == "# my step 01\n" and mine_02.read_text() == skeletons[1]
    assert checker(repo, "restore", "01").returncode == 0  # the skeleton it replaced was saved: undone
    assert mine_01.read_text() == skeletons[0]
    assert len(list(backups.glob("*-step_01"))) == 3

    no_backup = checker(repo, "restore", "03")
    assert no_backup.returncode == 1 and "no backup" in no_backup.stderr
    assert (repo / "steps" / "step_03.py").read_bytes() == step_03
    which = checker(repo, "restore")
    assert which.returncode == 2 and "steps with a backup: 01, 02" in which.stderr


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


# -- compare -----------------------------------------------------------------------------------------------
def compare_at(width: int, mine: Path) -> list[str]:
    """The side-by-side rows `compare` prints in a terminal `width` columns wide ($COLUMNS, as a shell sets it)."""
    env = dict(os.environ, COLUMNS=str(width))
    result = subprocess.run(
        [sys.executable, "-m", "tests.check.compare", "01", "--file", str(mine)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if " | " in line and not line.startswith("──")]


def test_compare_fills_the_terminals_width_and_never_passes_it(tmp_path):
    """Short lines of yours beside the solution's long ones: the solution's column takes the room yours leaves."""
    from tests.check.blocks import SOLUTION, blocks

    solution = (REPO_ROOT / "solutions" / "solution_01.py").read_text()
    theirs = blocks(solution, SOLUTION)["forward"]
    short = [  # a learner's terse version of the same block
        "    mean = x.mean(1, keepdims=True)",
        "    var = x.var(1, keepdims=True)",
        "    rstd = 1 / np.sqrt(var + eps)",
        "    y = (x - mean) * rstd * gamma + beta",
    ]
    skeleton = (REPO_ROOT / "steps" / "step_01.py").read_text()
    head, rest = skeleton.split("# TODO-BLOCK: forward\n", 1)
    tail = rest.split("    # TODO-BLOCK-END: forward", 1)[1]
    mine = tmp_path / "step_01.py"
    mine.write_text(head + "# TODO-BLOCK: forward\n" + "\n".join(short) + "\n    # TODO-BLOCK-END: forward" + tail)
    longest = max(len(line) for line in theirs)
    assert max(len(line) for line in short) + 3 + longest < 155 < 2 * longest  # fits, but not in halves

    wide = compare_at(155, mine)
    assert all(len(row) <= 155 for row in wide)
    rights = [row.split(" | ", 1)[1] for row in wide]
    assert all(line.rstrip() in rights for line in theirs if line.strip())  # each solution line whole

    narrow = compare_at(80, mine)
    assert all(len(row) <= 80 for row in narrow)
    pieces = " ".join(row.split(" | ", 1)[1] for row in narrow).split()
    assert pieces == " ".join(theirs).split()  # wrapped, every word kept, in order


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


# -- watch in a terminal -------------------------------------------------------------------------------------
CLEAR = "\033[H\033[2J"


class TerminalWatch:
    """`python -m tests.check watch` in the copy, on a pseudo-terminal: keys go in, the screen comes out."""

    def __init__(self, repo: Path, *args: str):
        import pty

        self.master, slave = pty.openpty()
        env = dict(os.environ, TERM="xterm", COLUMNS="160", LINES="50")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.check", "watch", *args],
            cwd=repo,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,  # its own terminal session, as in a terminal window
        )
        os.close(slave)
        self.output = ""
        self.mark = 0  # expect() looks after this point: what came after the last key
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.output += data.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, text: str, timeout: float = 60) -> str:
        """Waits for `text` after the last key press; returns the output from there to the end of `text`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                found = self.output.find(text, self.mark)
                if found >= 0:
                    return self.output[self.mark : found + len(text)]
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout} s; the screen:\n{self.screen()}")

    def screen(self) -> str:
        """What a terminal shows now: the output since the last clear."""
        with self.lock:
            return self.output.rsplit(CLEAR, 1)[-1]

    def press(self, key: str) -> None:
        with self.lock:
            self.mark = len(self.output)
        os.write(self.master, key.encode())

    def quit(self) -> int:
        self.press("q")
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


def attempts(repo: Path) -> dict[str, int]:
    record = json.loads((repo / ".checker" / "progress.json").read_text())
    return {step: entry["attempts"] for step, entry in record["steps"].items()}


def test_watch_in_a_terminal_redraws_each_report_names_its_keys_and_hints_from_the_failing_check(repo):
    write_step_01(repo, UNSTABLE_VARIANCE)
    watch = TerminalWatch(repo)
    try:
        watch.expect(ONE_FAILING)
        screen = watch.screen()
        assert screen.startswith("\033[3J── step 01 of 6") and "❌ numerically stable" in screen
        assert screen.rstrip().endswith("n next step · r re-run · q quit")  # the summary and the keys last
        assert "press h for a hint" in screen and "make hint" not in watch.output

        watch.press("h")
        watch.expect("(press h for hint 4 of 4)")
        watch.expect("q quit")
        screen = watch.screen()  # redrawn: the report, the hint about the failing check, the summary last
        assert screen.index("❌ numerically stable") < screen.index("Hint 3 of 4 for step 01: The numerics")
        assert screen.index("(press h for hint 4 of 4)") < screen.index(ONE_FAILING)

        watch.press("h")
        watch.expect("That was the last hint. The solution, beside your blocks: press c")
        watch.press("c")
        watch.expect("solution: solutions/solution_01.py")  # no blocks left in yours: a diff

        watch.press("n")  # step 02 was never checked: it runs, and it stays there
        watch.expect(f"step 2 of 6 · 2/{total_checks('02')} checks")
        assert watch.screen().startswith("\033[3J── step 02 of 6")
        assert "make " not in watch.output.replace("make compare", "")  # every prompt names a key
    finally:
        assert watch.quit() == 0
    assert workers_of(repo) == []


def test_watch_started_again_shows_the_last_results_and_runs_nothing_unchanged(repo):
    write_step_01(repo, UNSTABLE_VARIANCE)
    first = TerminalWatch(repo)
    try:
        first.expect(ONE_FAILING)
    finally:
        assert first.quit() == 0
    assert attempts(repo) == {"01": 1}
    again = TerminalWatch(repo)
    try:
        shown = again.expect("q quit")
        assert "(the last results: your files and the checker have not changed since)" in shown
        assert "❌ numerically stable" in shown and ONE_FAILING in shown
        time.sleep(1)  # time enough for a run to start, were one started
    finally:
        assert again.quit() == 0
    assert attempts(repo) == {"01": 1}


def test_watch_n_at_the_last_step_stays_there_and_a_passing_step_06_says_what_was_not_checked(repo):
    glue = repo / "steps" / "step_06" / "step_06.py"
    glue.write_text(glue.read_text() + "\n# started\n")
    record_report(repo, "06", gpu_less_step_06_report())
    watch = TerminalWatch(repo, "06")
    try:
        shown = watch.expect("q quit")
        judged = len(load_checklist("06").checks) - 3  # every CPU check passed; the three GPU checks skipped
        assert f"step 6 of 6 · {judged}/{judged} checks · {judged} passed, 0 failed, 3 skipped · {GPU_LABEL}" in shown
        watch.press("n")
        watch.expect("Step 06 is the last step")
        time.sleep(1)
        assert "── step 01" not in watch.output and "(checking" not in watch.output
    finally:
        assert watch.quit() == 0
    assert attempts(repo) == {"06": 1}  # the one stored by record_report: nothing ran
