"""How long the learner waits: `make sNN` on a step's solution, cold and warm, and a re-check in `watch`.

Cold means an empty MAX cache: MAX keeps compiled graphs and kernels under `MODULAR_DERIVED_PATH`
(default ~/.cache/modular), so each step gets a fresh temporary directory there and the learner's own
cache is never read, written or removed. Warm is the same command again, with that cache filled.
Watch is what `make watch` does after a save: the quick checks, in a worker started ahead of time
whose libraries are already imported (`watch-quick`), then every check (`watch-full`).

Step 06 also gets its edit-to-verdict loop (`edit_to_verdict`): after a real edit of `layer_norm.mojo`,
how long `mojo precompile` of the folder takes, then the checker's quick pass (`edit-quick`) and, after
another edit, its full pass (`edit-full`), each as a multiple of that compile, measured in the same
run; and the first full check of a folder never seen before (`new-folder`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.check import REPO_ROOT
from tests.check.engine import checklist_file

MAX_CACHE_ENV = "MODULAR_DERIVED_PATH"  # read by MAX's config as `derived_path`; the cache is <it>/cache
WARM_REPEATS = 2


def _run_checker(step: str, env: dict, timeout: float) -> dict:
    command = [sys.executable, "-m", "tests.check", step, "--solution", "--json"]
    started = time.perf_counter()
    try:
        process = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - started, "passed": False, "error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - started
    checks = passed = None
    slowest = []
    for line in process.stdout.splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue
        checks = len(report.get("checks", []))
        passed = report.get("passed")
        timed = sorted(report.get("checks", []), key=lambda check: -check.get("seconds", 0.0))
        slowest = [{"name": check["name"], "seconds": check.get("seconds", 0.0)} for check in timed[:2]]
    entry = {"seconds": seconds, "passed": bool(passed) and process.returncode == 0, "checks": checks}
    entry["slowest"] = slowest  # where the wait goes
    if process.returncode not in (0, 1):
        entry["error"] = (process.stderr.strip().splitlines() or [f"exit code {process.returncode}"])[-1][:300]
    return entry


def measure_step(step: str, *, timeout: float = 600.0) -> list[dict]:
    """Rows {"step", "cache": "cold"|"warm", "seconds", "passed", ...} for one step's checker."""
    if not checklist_file(step).exists():
        return [
            {
                "step": step,
                "cache": cache,
                "seconds": None,
                "passed": None,
                "skipped": f"{checklist_file(step).relative_to(REPO_ROOT)} does not exist yet",
            }
            for cache in ("cold", "warm")
        ]
    cache_root = tempfile.mkdtemp(prefix="layernorm-bench-max-cache-")
    env = dict(os.environ, **{MAX_CACHE_ENV: cache_root})
    env.pop("LAYERNORM_CHECK_STRICT", None)
    try:
        cold = _run_checker(step, env, timeout)
        artefacts = [path for path in Path(cache_root).rglob("*") if path.is_file()]
        cold["cache_files"] = len(artefacts)  # what the cold run compiled and stored
        cold["cache_mb"] = round(sum(path.stat().st_size for path in artefacts) / 2**20, 1)
        warm_runs = [_run_checker(step, env, timeout) for _ in range(WARM_REPEATS)]
        watch = _run_watch(step, env, timeout)
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    warm = dict(
        warm_runs[-1],
        seconds=statistics.median(run["seconds"] for run in warm_runs),
        runs=[round(run["seconds"], 2) for run in warm_runs],
    )
    rows = [{"step": step, "cache": "cold", **cold}, {"step": step, "cache": "warm", **warm}]
    rows += [{"step": step, "cache": cache, **entry} for cache, entry in watch.items()]
    if step == "06":
        rows += [{"step": step, "cache": cache, **entry} for cache, entry in edit_to_verdict(timeout).items()]
    return rows


# Real edits of the fast kernel that keep it correct (each a new content: a new compile), applied in turn.
KERNEL_EDITS = (
    ("var mean = total / Float32(width)", "var mean = total * (1 / Float32(width))"),
    ("col += 1\n", "col = col + 1\n"),
    ("squares_lanes += centred * centred", "squares_lanes = squares_lanes + centred * centred"),
)


def edit_to_verdict(timeout: float = 600.0) -> dict:
    """{"edit-quick": {...}, "edit-full": {...}, "new-folder": {...}} for step 06, on a copy of its solution.

    The copy is checked in full first (its graphs and kernel built, as a learner's are before they edit), then
    edited; each phase times `mojo precompile` of the edited folder, then the checker on it.
    """
    from tests.check.step_06.kernel_harness import mojo_binary

    scratch = Path(tempfile.mkdtemp(prefix="layernorm-bench-edit-"))
    try:
        folder = _solution_copy(scratch / "first" / "step_06")
        warmed = _check_folder(folder, [], timeout)
        found = {}
        for phase, edit, extra in (("edit-quick", 0, ["--quick"]), ("edit-full", 1, [])):
            _edit(folder, KERNEL_EDITS[edit])
            compile_seconds = _precompile_seconds(mojo_binary(), folder, scratch)
            entry = _check_folder(folder, extra, timeout)
            entry.update(precompile_seconds=compile_seconds, ratio=entry["seconds"] / compile_seconds)
            found[phase] = entry
        fresh = _solution_copy(scratch / "second" / "step_06")
        _edit(fresh, KERNEL_EDITS[2])
        found["new-folder"] = _check_folder(fresh, [], timeout)
        found["edit-quick"]["warmed_first"] = round(warmed["seconds"], 1)
        found["edit-quick"]["empty_build_seconds"] = _empty_build_seconds(mojo_binary(), scratch)
        return found
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _solution_copy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for source in (REPO_ROOT / "solutions" / "solution_06").iterdir():
        if source.is_file():
            shutil.copy(source, folder / source.name.replace("solution_06", "step_06"))
    return folder


def _edit(folder: Path, change: tuple[str, str]) -> None:
    """A real change of the kernel, and a line no run has seen: content never compiled, by MAX or the checker."""
    kernel = folder / "layer_norm.mojo"
    text = kernel.read_text()
    if change[0] not in text:
        raise ValueError(f"the solution's kernel no longer has {change[0]!r}: update KERNEL_EDITS")
    kernel.write_text(text.replace(change[0], change[1], 1) + f"# edited {uuid.uuid4().hex}\n")


def _precompile_seconds(mojo: Path, folder: Path, scratch: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(mojo), "precompile", str(folder), "-o", str(scratch / "kernels.mojoc")], capture_output=True)
    return time.perf_counter() - started


def _empty_build_seconds(mojo: Path, scratch: Path) -> float:
    """`mojo build` of a program that does nothing: what any executable costs to build here, the floor of the
    checker's own build of the kernel."""
    source = scratch / "empty.mojo"
    source.write_text("def main():\n    pass\n")
    started = time.perf_counter()
    subprocess.run([str(mojo), "build", str(source), "-o", str(scratch / "empty")], capture_output=True)
    return time.perf_counter() - started


def _check_folder(folder: Path, extra: list[str], timeout: float) -> dict:
    """One checker run on a step 06 folder: its seconds, verdict, and where the time went (each check's seconds)."""
    command = [sys.executable, "-m", "tests.check", "06", "--file", str(folder), "--device", "cpu", "--json", *extra]
    started = time.perf_counter()
    try:
        process = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - started, "passed": False, "error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - started
    try:
        report = json.loads(process.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"seconds": seconds, "passed": False, "error": (process.stderr.strip().splitlines() or ["?"])[-1]}
    checks = [c for c in report["checks"] if c["status"] != "skipped"]
    return {
        "seconds": seconds,
        "passed": report["passed"],
        "checks": len(checks),
        "parts": {c["name"]: round(c["seconds"], 2) for c in checks if c["seconds"] >= 0.05},
        "in_checks": round(sum(c["seconds"] for c in checks), 2),
    }


def _run_watch(step: str, env: dict, timeout: float) -> dict:
    """{"watch-quick": {...}, "watch-full": {...}} from this module's own command line, in its own process."""
    command = [sys.executable, "-m", "bench.checker_latency", "--watch", step]
    try:
        process = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return json.loads(process.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as error:
        failed = {"seconds": None, "passed": False, "error": f"the watch measurement failed ({error})"}
        return {"watch-quick": failed, "watch-full": failed}


def watch_recheck(step: str) -> dict:
    """The two phases of a `watch` re-check of the solution, each in a spare worker that is already warm."""
    from tests.check.cli import parse_check_arguments
    from tests.check.engine import run_checklist
    from tests.check.sandbox import Spare

    found = {}
    for phase, extra in (("watch-quick", ["--quick"]), ("watch-full", [])):
        checklist, options = parse_check_arguments([step, "--solution", *extra])
        path = REPO_ROOT / checklist.solution
        spare = Spare(path, checklist.preload)
        spare.wait_ready(600)  # the learner was editing meanwhile
        started = time.perf_counter()
        report = run_checklist(checklist, path, options, spare=spare)
        found[phase] = {
            "seconds": time.perf_counter() - started,
            "passed": report.passed,
            "checks": sum(r.status != "skipped" for r in report.results),
        }
    return found


def max_import_seconds() -> float | None:
    """The part of a warm MAX step spent importing MAX alone (second of two runs: files in the OS cache)."""
    command = [sys.executable, "-c", "import max.experimental.functional, max.experimental.nn"]
    seconds = None
    for _ in range(2):
        started = time.perf_counter()
        if subprocess.run(command, capture_output=True).returncode != 0:
            return None
        seconds = time.perf_counter() - started
    return seconds


def measure(steps: list[str]) -> list[dict]:
    rows = []
    for step in steps:
        rows.extend(measure_step(step))
    return rows


if __name__ == "__main__":  # `--watch NN`: one watch measurement, as a JSON line (run by _run_watch)
    print(json.dumps(watch_recheck(sys.argv[sys.argv.index("--watch") + 1])))
