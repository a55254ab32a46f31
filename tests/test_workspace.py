"""The workspace keeps its promises: one hop per step, pixi and make in step, skeletons match solutions."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest
import tomllib

from tests.check.engine import REPO_ROOT, available_steps, checklist_file, load_checklist

STEPS = available_steps()
# `pixi run book` serves the book; `make book` builds it.
PIXI_ONLY_FLAGS = {"book": "--serve"}
# make uses the system's Chromium where it can install one; pixi always takes Playwright's.
DIFFERENT_BY_DESIGN = {"browser-deps"}


def pixi_tasks() -> dict[str, str]:
    return tomllib.loads((REPO_ROOT / "pixi.toml").read_text())["tasks"]


def make_command(target: str) -> str:
    """The command `make TARGET` would run, with the venv's interpreter written as plain `python`."""
    # A clean environment: under `make test`, MAKEFLAGS/MAKELEVEL would add "Entering directory" lines.
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.ready", target, "NN=", "ARGS="],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    command = result.stdout.strip().splitlines()[-1]
    return re.sub(r"(^|\s)\.venv/bin/python\b", r"\1python", command).strip()


@pytest.mark.parametrize("task", sorted(pixi_tasks()))
def test_pixi_and_make_run_the_same_command(task):
    if task in DIFFERENT_BY_DESIGN:
        assert f"\n{task}:" in (REPO_ROOT / "Makefile").read_text()
        return
    expected = pixi_tasks()[task]
    extra = PIXI_ONLY_FLAGS.get(task)
    if extra:
        expected = expected.replace(f" {extra}", "")
    assert make_command(task) == expected


def test_the_code_passes_the_linter_and_the_formatter():
    """What `make lint` runs, so that CI holds it: ruff's rules, and ruff format's layout (so that `make fmt`
    changes nothing on a clean checkout)."""
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_every_step_has_a_task_in_both():
    tasks = pixi_tasks()
    makefile = (REPO_ROOT / "Makefile").read_text()
    for step in STEPS:
        assert f"s{step}" in tasks
        assert re.search(rf"^STEPS :=.*\bs{step}\b", makefile, re.M)


def test_pins_are_the_same_in_pyproject_and_readme():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = {re.split(r"==", dep)[0]: dep for dep in project["dependencies"] if "==" in dep}
    assert set(pins) >= {"max", "torch"}
    readme = (REPO_ROOT / "README.md").read_text()
    for dep in pins.values():
        assert dep in readme, f"README does not state the pin {dep}"


def test_ci_runs_only_what_the_readme_says():
    readme = (REPO_ROOT / "README.md").read_text()
    ci_commands = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert "make test" in ci_commands
    for command in ci_commands:
        assert command in readme, f".ci/run runs `{command}`, which the README does not mention"


@pytest.mark.parametrize("step", STEPS)
def test_each_step_is_one_hop_away(step):
    checklist = load_checklist(step)
    checks = f"tests/check/step_{step}/checklist.py"
    for path in (checklist.skeleton, checklist.solution, checks, f"docs/src/step_{step}.md"):
        assert (REPO_ROOT / path).exists(), f"step {step}: {path} is missing"
    assert f"step_{step}" in checklist.skeleton and f"solution_{step}" in checklist.solution


def interface(path) -> dict[str, tuple]:
    """Top-level functions and classes (with their methods): signature and docstring."""
    tree = ast.parse((REPO_ROOT / path).read_text())
    found = {}

    def signature(node):
        return ast.unparse(node.args), ast.get_docstring(node)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = signature(node)
        elif isinstance(node, ast.ClassDef):
            found[node.name] = ([ast.unparse(base) for base in node.bases], ast.get_docstring(node))
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = signature(item)
    return found


@pytest.mark.parametrize("step", STEPS)
def test_skeleton_has_the_solutions_names_signatures_and_docstrings(step):
    checklist = load_checklist(step)
    if not checklist.solution.endswith(".py"):
        pytest.skip("not a Python step")
    assert interface(checklist.skeleton) == interface(checklist.solution)


# -- the checker's own modules import each other without a cycle ------------------------------------------------
CHECKER = REPO_ROOT / "tests" / "check"


def checker_imports() -> dict[str, set[str]]:
    """module -> the tests.check modules it imports, anywhere in the file (inside functions too)."""
    modules = {
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in CHECKER.rglob("*.py")
    }
    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                for alias in node.names:  # `from package import module` imports the module
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[module] = {name for name in found if name in modules and name != module}
    return graph


def test_the_checker_has_no_import_cycle():
    graph = checker_imports()
    assert "tests.check.cli" in graph["tests.check.commands"]  # the graph sees imports (and is not empty)
    done, on_path = set(), []

    def visit(module):
        if module in on_path:
            cycle = on_path[on_path.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        on_path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_no_module_imports_the_command_line_entry_point():
    """`python -m tests.check` runs __main__ once: nothing imports it back (it once ran twice per command)."""
    importers = [module for module, imported in checker_imports().items() if "tests.check.__main__" in imported]
    assert importers == []


# -- a step's checks live in its own package; the kit holds what steps share -----------------------------------
def step_packages() -> dict[str, str]:
    """step number -> its package under tests/check (a folder step_NN holding Python files)."""
    return {
        folder.name.removeprefix("step_"): f"tests.check.{folder.name}"
        for folder in sorted(CHECKER.glob("step_*"))
        if folder.is_dir() and any(folder.glob("*.py"))
    }


def test_each_step_package_is_a_registered_checklist():
    assert set(step_packages()) == set(STEPS), "a package under tests/check/ without a step record, or a record without"
    for step, package in step_packages().items():
        assert checklist_file(step).parent == CHECKER / package.rpartition(".")[2]
        checklist = load_checklist(step)
        assert checklist.step == step, f"{package}'s checklist says it is step {checklist.step}"
        assert checklist.checks, f"{package}'s checklist registers no check"


def test_no_step_package_imports_another():
    """A step's checks are in one place: what two steps share belongs in tests.check.kit."""
    packages = step_packages().values()

    def package_of(module):
        return next((package for package in packages if f"{module}.".startswith(f"{package}.")), None)

    crossings = [
        f"{module} imports {imported}"
        for module, imports in checker_imports().items()
        for imported in imports
        if package_of(module) and package_of(imported) not in (None, package_of(module))
    ]
    assert crossings == []


KIT = "tests.check.kit"


def kit_users() -> dict[str, set[str]]:
    """kit module -> the steps whose package imports it, or a name the kit's __init__ re-exports from it."""
    modules = {f"{KIT}.{path.stem}" for path in (CHECKER / "kit").glob("*.py") if path.stem != "__init__"}
    reexported = {  # name -> the kit module it comes from
        alias.asname or alias.name: node.module
        for node in ast.parse((CHECKER / "kit" / "__init__.py").read_text(encoding="utf-8")).body
        if isinstance(node, ast.ImportFrom) and node.module in modules
        for alias in node.names
    }
    users = {module: set() for module in modules}
    for step in step_packages():
        for path in (CHECKER / f"step_{step}").glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == KIT:
                    names = [alias.name for alias in node.names]
                    used = {f"{KIT}.{name}" if f"{KIT}.{name}" in modules else reexported.get(name) for name in names}
                elif isinstance(node, ast.ImportFrom):
                    used = {node.module}
                elif isinstance(node, ast.Import):
                    used = {alias.name for alias in node.names}
                else:
                    continue
                for module in used & modules:
                    users[module].add(step)
    return users


def test_the_kit_holds_only_what_steps_share():
    """What one step alone uses lives in its package (tests/check/step_NN/), not in the kit. The kit's only
    infrastructure is its __init__, the vocabulary every checklist imports; each of its modules has two step users."""
    users = kit_users()
    assert "tests.check.kit.judging" in users and len(users["tests.check.kit.judging"]) > 2  # the scan sees imports
    lonely = {module: sorted(steps) for module, steps in users.items() if len(steps) < 2}
    assert lonely == {}, f"kit modules with fewer than two step users (move each into its step's package): {lonely}"
