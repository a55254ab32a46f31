"""Benchmark every LayerNorm implementation of the tutorial against the memory-bandwidth limit.

    python -m bench.run                 all shapes + the checker's latency (make bench / pixi run bench)
    python -m bench.run --quick         two shapes, short budgets: a couple of minutes
    python -m bench.run --mine          also your steps/step_NN.py files that pass their checks
    python -m bench.run --checker-only  re-time the checker alone, into the existing results (after a checker change)
    python -m bench.run --tiny --out D  a tiny smoke run written to D (the project's tests use it)

Each library runs in its own worker process (`bench/worker.py`). The default output is
`bench/results.json`, `bench/numbers.md` (the measured part of the book's performance page, which
includes it) and the chart `docs/src/figures/bench.png`; with `--out DIR` all three go to DIR and
nothing committed is touched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import checker_latency, impls, measure, report
from tests.check import REPO_ROOT
from tests.check.engine import checklist_file

SHAPES = {
    "full": [(4096, 768), (8192, 1024), (16384, 4096)],  # GPT-2 small; 32 MiB arrays; 256 MiB, beyond the LLC
    "quick": [(4096, 768), (8192, 1024)],
    "tiny": [(64, 128)],
}
WORKER_TIMEOUT = 1800.0  # seconds per library; a cold MAX cache compiles every graph first
CHECKER_STEPS = ["01", "02", "03", "06"]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="two shapes, short budgets")
    size.add_argument("--tiny", action="store_true", help="one tiny shape, three repeats (a smoke test)")
    parser.add_argument(
        "--mine", action="store_true", help="also measure your steps/step_NN.py files that pass their checks"
    )
    parser.add_argument(
        "--impl", help=f"comma-separated implementations to measure (default: all); known: {', '.join(impls.BY_NAME)}"
    )
    parser.add_argument("--shapes", help="comma-separated NxD shapes, e.g. 1024x768,4096x768")
    parser.add_argument(
        "--checker-latency",
        dest="checker_latency",
        action="store_true",
        default=None,
        help="also time the checker (cold and warm); on by default in the full run",
    )
    parser.add_argument("--no-checker-latency", dest="checker_latency", action="store_false")
    parser.add_argument(
        "--checker-steps",
        default=",".join(CHECKER_STEPS),
        help="steps whose checker latency is measured (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, help="write results.json, numbers.md and chart.png here instead of bench/ and docs/"
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=REPO_ROOT / "solutions",
        help="where the solution files are (default: solutions/)",
    )
    parser.add_argument(
        "--checker-only",
        action="store_true",
        help="time the checker alone and replace those rows of the existing results.json (the kernels' rows stay)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rebuild numbers.md and the chart from the existing results.json",
    )
    return parser.parse_args(argv)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        n, _, d = item.lower().partition("x")
        shapes.append((int(n), int(d)))
    return shapes


# -- which files to measure -------------------------------------------------------------------------------
def solution_sources(impl: impls.Impl, solutions_dir: Path) -> dict[str, str | None]:
    """pass -> the file it loads: a solution from `solutions_dir`, the benchmark's own files from the repository."""
    sources = {}
    for pass_ in impl.passes:
        relative = impl.sources.get(pass_)
        if not relative:
            sources[pass_] = None
        elif Path(relative).parts[0] == "solutions":
            sources[pass_] = str(solutions_dir / Path(relative).relative_to("solutions"))
        else:
            sources[pass_] = str(REPO_ROOT / relative)
    return sources


def passing_steps(steps: list[str]) -> dict[str, str]:
    """step -> "passes" or why not, for each steps/step_NN.py, judged by the checker itself."""
    verdicts = {}
    for step in steps:
        has_checklist = checklist_file(step).exists()
        if not list((REPO_ROOT / "steps").glob(f"step_{step}*")) or not has_checklist:
            verdicts[step] = "does not exist, or has no checklist"
            continue
        process = subprocess.run(
            [sys.executable, "-m", "tests.check", step, "--json"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        verdicts[step] = "passes" if process.returncode == 0 else f"does not pass its checks yet (make s{step})"
    return verdicts


def mine_entries(selected: list[impls.Impl]) -> tuple[list[dict], list[dict]]:
    """Your step files, measured like the solutions they mirror, for each pass whose step's checks pass.

    Only solutions have a step of yours to mirror: the benchmark's own files (numpy-tuned) do not."""
    steps_of = {
        impl.name: {
            pass_: found.group(1)
            for pass_, source in impl.sources.items()
            if (found := re.match(r"solutions/solution_(\d+)", source))
        }
        for impl in selected
    }
    verdicts = passing_steps(sorted({step for steps in steps_of.values() for step in steps.values()}))
    entries, unavailable = [], []
    for impl in selected:
        sources = {}
        for pass_, step in steps_of[impl.name].items():
            if verdicts[step] == "passes":
                # solutions/solution_NN[.py] -> steps/step_NN[.py]
                mine = impl.sources[pass_].replace("solutions/solution_", "steps/step_")
                sources[pass_] = str(REPO_ROOT / mine)
            else:
                unavailable.append(
                    {"impl": "mine-" + impl.name, "pass": pass_, "reason": f"steps/step_{step}.py {verdicts[step]}"}
                )
        if sources:
            entries.append({"name": "mine-" + impl.name, "base": impl.name, "group": impl.group, "sources": sources})
    return entries, unavailable


# -- running the workers --------------------------------------------------------------------------------------
def run_group(group: str, entries: list[dict], shapes, budget: str, copy: bool, scratch: Path) -> dict:
    task = {"group": group, "impls": entries, "shapes": [list(s) for s in shapes], "budget": budget, "copy": copy}
    task_path, result_path = scratch / f"{group}.task.json", scratch / f"{group}.result.json"
    task_path.write_text(json.dumps(task))
    names = ", ".join(e["name"] for e in entries) or "copy"
    print(f"[{time.strftime('%H:%M:%S')}] {group}: {names}", flush=True)
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    error = None
    try:
        process = subprocess.run(
            [sys.executable, "-m", "bench.worker", str(task_path), str(result_path)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
        )
        if process.returncode != 0:
            lines = [line for line in process.stderr.strip().splitlines() if line.strip()]
            error = f"the {group} worker exited with code {process.returncode}: " + (lines[-1][:300] if lines else "")
    except subprocess.TimeoutExpired:
        error = f"the {group} worker did not finish in {WORKER_TIMEOUT:.0f} s"
    result = (
        json.loads(result_path.read_text())
        if result_path.exists()
        else {"rows": [], "unavailable": [], "skipped": [], "copy": [], "diagnostics": [], "threads": {}}
    )
    if error:
        measured = {row["impl"] for row in result["rows"]} | {u["impl"] for u in result["unavailable"]}
        for entry in entries:
            if entry["name"] not in measured:
                result["unavailable"].append({"impl": entry["name"], "reason": error})
        print("  " + error, flush=True)
    return result


def measure_all(args) -> dict:
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    shapes = parse_shapes(args.shapes) if args.shapes else SHAPES[mode]
    wanted = args.impl.split(",") if args.impl else list(impls.BY_NAME)
    unknown = [name for name in wanted if name not in impls.BY_NAME]
    if unknown:
        raise SystemExit(f"unknown implementation(s): {', '.join(unknown)}; known: {', '.join(impls.BY_NAME)}")
    selected = [impls.BY_NAME[name] for name in wanted]
    entries = [
        {"name": impl.name, "base": impl.name, "group": impl.group, "sources": solution_sources(impl, args.solutions)}
        for impl in selected
    ]
    unavailable = []
    if args.mine:
        mine, unavailable = mine_entries(selected)
        entries += mine

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode,
        "shapes": [list(s) for s in shapes],
        "dtype": "float32",
        "convention": {
            "forward_bytes": "2*N*D*itemsize",
            "backward_bytes": "3*N*D*itemsize",
            "roofline": "gbps / copy gbps at the same shape",
            "ratio_to_torch_native": "median_ms / torch-native median_ms, same pass and shape",
            "statistic": "median of repeated calls after warm-up",
        },
        "budget": measure.BUDGETS[mode].__dict__,
        "machine": measure.machine(),
        "rows": [],
        "unavailable": unavailable,
        "skipped": [],
        "copy": [],
        "diagnostics": [],
        "threads": {},
        "impls": {
            impl.name: {
                "group": impl.group,
                "passes": list(impl.passes),
                "note": impl.note,
                "sources": solution_sources(impl, args.solutions),
            }
            for impl in selected
        },
    }
    with tempfile.TemporaryDirectory(prefix="layernorm-bench-") as scratch:
        for group in impls.GROUPS:
            group_entries = [e for e in entries if e["group"] == group]
            if not group_entries and group != "numpy":
                continue  # the numpy worker always runs: it measures the copy limit
            found = run_group(group, group_entries, shapes, mode, copy=(group == "numpy"), scratch=Path(scratch))
            for key in ("rows", "unavailable", "skipped", "copy", "diagnostics"):
                results[key] += found.get(key, [])
            results["threads"].update(found["threads"])
    for source in results["impls"].values():
        source["sources"] = {k: v and impls.display(Path(v)) for k, v in source["sources"].items()}

    if args.checker_latency if args.checker_latency is not None else mode == "full":
        results.update(measure_checker(args.checker_steps.split(","), with_date=False))
    results["machine_end"] = {"load_average": measure.machine().get("load_average")}
    return results


def measure_checker(steps: list[str], *, with_date: bool = True) -> dict:
    """The checker-latency part of the results; `with_date` when it is measured apart from the kernels' rows."""
    print(f"[{time.strftime('%H:%M:%S')}] checker latency: s{', s'.join(steps)}", flush=True)
    started = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": measure.machine().get("load_average"),
    }
    found = {"checker": checker_latency.measure(steps), "max_import_seconds": checker_latency.max_import_seconds()}
    if with_date:
        found["checker_run"] = dict(started, load_average_end=measure.machine().get("load_average"))
    return found


def write_outputs(results: dict, out: Path | None) -> dict[str, Path]:
    """results.json and numbers.md under bench/ and the chart in the book's figures, or all three in `out`."""
    paths = {
        "results": (out or REPO_ROOT / "bench") / "results.json",
        "numbers": (out or REPO_ROOT / "bench") / "numbers.md",
        "chart": out / "chart.png" if out else REPO_ROOT / "docs" / "src" / "figures" / "bench.png",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    paths["results"].write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    paths["numbers"].write_text(report.numbers(results))
    report.chart(results, paths["chart"])
    return paths


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render_only or args.checker_only:
        source = (args.out or REPO_ROOT / "bench") / "results.json"
        results = json.loads(source.read_text())
        if args.checker_only:
            results.update(measure_checker(args.checker_steps.split(",")))
    else:
        started = time.perf_counter()
        results = measure_all(args)
        results["seconds"] = round(time.perf_counter() - started, 1)
    report.derive(results)
    results["targets"] = report.targets(results)
    paths = write_outputs(results, args.out)
    print(report.table(results))
    print("\nwrote " + ", ".join(impls.display(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
