"""The VS Code set-up in `.vscode/`: its tasks run the checker, its problem matcher finds each ❌'s file and line
in real reports, and its interpreter is the project's `.venv`."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT

VSCODE = REPO_ROOT / ".vscode"


def tasks() -> dict[str, dict]:
    return {task["label"]: task for task in json.loads((VSCODE / "tasks.json").read_text())["tasks"]}


def task_running(words: str) -> dict:
    found = [task for task in tasks().values() if words in task["command"]]
    assert len(found) == 1, f"no single task runs {words!r}"
    return found[0]


class Matcher:
    """The problem matcher as VS Code applies it: a multi-line pattern over consecutive lines of the output,
    the file found by `fileLocation: ["search", {"include": [...]}]` (the first file under those folders,
    files before subfolders, whose path ends with the name reported)."""

    def __init__(self, spec: dict, workspace: Path):
        self.spec, self.workspace = spec, workspace
        self.patterns = [(re.compile(p["regexp"]), p) for p in spec["pattern"]]

    def problems(self, output: str) -> list[dict]:
        lines, found = output.splitlines(), []
        for start in range(len(lines) - len(self.patterns) + 1):
            matches = [regexp.search(lines[start + i]) for i, (regexp, _) in enumerate(self.patterns)]
            if all(matches):
                problem = {}
                for match, (_, pattern) in zip(matches, self.patterns, strict=True):
                    for key in ("file", "line", "column", "message", "code"):
                        if key in pattern and match.group(pattern[key]) is not None:
                            problem[key] = match.group(pattern[key])
                problem["path"] = self.search(problem["file"])
                found.append(problem)
        return found

    def search(self, name: str) -> Path | None:
        kind, options = self.spec["fileLocation"]
        assert kind == "search"

        def walk(folder: Path):
            entries = sorted(folder.iterdir())
            for entry in entries:
                if entry.is_file() and entry.as_posix().endswith(name):
                    return entry
            for entry in entries:
                if entry.is_dir():
                    hit = walk(entry)
                    if hit:
                        return hit
            return None

        for folder in options["include"]:
            hit = walk(Path(folder.replace("${workspaceFolder}", str(self.workspace))))
            if hit:
                return hit
        return None


def test_the_tasks_run_the_watch_and_the_step_of_the_open_file_with_one_matcher():
    watch, current = task_running("make watch"), task_running("${relativeFile}")
    assert watch["isBackground"] and watch["problemMatcher"]["background"]
    assert current["group"] == {"kind": "build", "isDefault": True}  # Ctrl+Shift+B
    assert "python -m tests.check '${relativeFile}'" in current["command"]
    shared = {key: value for key, value in watch["problemMatcher"].items() if key != "background"}
    assert shared == current["problemMatcher"]


def test_a_step_file_or_page_stands_for_its_step_on_the_command_line():
    from tests.check.cli import step_id

    for path, step in [
        ("steps/step_01.py", "01"),
        ("steps/step_06/layer_norm.mojo", "06"),
        ("solutions/solution_06/step_06.py", "06"),
        ("docs/src/step_03.md", "03"),
    ]:
        assert step_id(path) == step
    with pytest.raises(Exception, match="a step's file"):
        step_id("README.md")


def test_the_watch_matcher_opens_and_closes_around_each_report():
    from tests.check.watch import Watcher, summary_line

    background = task_running("make watch")["problemMatcher"]["background"]
    header = "\n".join(Watcher("02", interactive=False, out=io.StringIO()).header())
    report = {"passed": False, "checks": [{"name": "x", "status": "failed", "message": "m"}]}
    assert re.search(background["beginsPattern"], header)
    assert re.search(background["endsPattern"], summary_line("02", report))
    assert not re.search(background["endsPattern"], header)


# step 02 solved, but its backward raises at a line of its own
RAISES = ("    # ANCHOR: backward\n", "    # ANCHOR: backward\n    raise ValueError('not yet')\n")


def test_the_problem_matcher_finds_each_failure_with_a_line_in_real_reports(tmp_path):
    """The checker run on wrong files; every ❌ whose hint names a line is one problem, at that line."""
    workspace = tmp_path / "workspace"
    (workspace / "steps").mkdir(parents=True)
    skeleton = workspace / "steps" / "step_01.py"  # the skeleton: a `None` placeholder at a line
    skeleton.write_text((REPO_ROOT / "steps" / "step_01.py").read_text())
    wrong = workspace / "steps" / "step_02.py"
    wrong.write_text((REPO_ROOT / "solutions" / "solution_02.py").read_text().replace(*RAISES))
    matcher = Matcher(task_running("${relativeFile}")["problemMatcher"], workspace)
    for step, path, code in (("01", skeleton, "return y.astype"), ("02", wrong, "raise ValueError")):
        report = subprocess.run(
            [sys.executable, "-m", "tests.check", step, "--file", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        failures_with_a_line = [
            line for line in report.splitlines() if line.strip().startswith("↳") and re.search(r"\.py:\d+", line)
        ]
        problems = matcher.problems(report)
        assert failures_with_a_line and len(problems) == len(failures_with_a_line), report
        for problem in problems:
            assert problem["path"] == path
            assert code in path.read_text().splitlines()[int(problem["line"]) - 1]
            assert problem["code"] in report and problem["message"].startswith(("A `None`", "Your code raised"))


def test_the_problem_matcher_takes_a_mojo_compile_error_with_its_column(tmp_path):
    from tests.check.step_06.judging import compiler_message

    kernel = REPO_ROOT / "steps" / "step_06" / "layer_norm.mojo"
    compiler_output = f"{kernel}:12:5: error: use of unknown declaration 'rowz'\n    rowz += 1\n    ^\n"
    report = (
        "❌ the Mojo package compiles (layer_norm.mojo)\n"
        f"   ↳ The Mojo compiler says: {compiler_message(compiler_output, kernel.parent)}\n"
    )
    (problem,) = Matcher(task_running("make watch")["problemMatcher"], REPO_ROOT).problems(report)
    assert (problem["path"], problem["line"], problem["column"]) == (kernel, "12", "5")


def test_the_editor_uses_the_projects_venv_and_git_keeps_the_settings():
    settings = json.loads((VSCODE / "settings.json").read_text())
    interpreter = Path(settings["python.defaultInterpreterPath"].replace("${workspaceFolder}", str(REPO_ROOT)))
    assert interpreter == REPO_ROOT / ".venv" / "bin" / "python"
    if interpreter.exists():  # after `make venv`: the editor resolves the steps' imports there
        code = "import importlib.util as u; print(all(u.find_spec(m) for m in ('max', 'torch', 'numpy')))"
        assert subprocess.run([interpreter, "-c", code], capture_output=True, text=True).stdout.strip() == "True"
    for name in ("tasks.json", "settings.json", "extensions.json"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f".vscode/{name}"], cwd=REPO_ROOT)
        assert ignored.returncode == 1, f".vscode/{name} is ignored by git: learners would not get it"
