"""From measured rows to what a reader sees: derived figures, targets, the table, the chart, the page."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import measure


# -- derived figures --------------------------------------------------------------------------------
def shape_key(shape) -> tuple[int, int]:
    return tuple(int(v) for v in shape)


def find(rows: list[dict], impl: str, pass_: str, shape) -> dict | None:
    for row in rows:
        if row["impl"] == impl and row["pass"] == pass_ and shape_key(row["shape"]) == shape_key(shape):
            return row
    return None


def copy_summary(results: dict) -> dict[tuple[int, int], dict]:
    """The limit at each shape: the median of every copy measured in the run at that shape."""
    by_shape: dict[tuple[int, int], list[float]] = {}
    for entry in results.get("copy", []):
        by_shape.setdefault(shape_key(entry["shape"]), []).append(entry["median_ms"])
    summary = {}
    for shape, times in by_shape.items():
        ms = statistics.median(times)
        summary[shape] = {
            "shape": list(shape),
            "median_ms": ms,
            "gbps": measure.gbps(shape, "forward", ms),
            "measurements": len(times),
            "gbps_range": [measure.gbps(shape, "forward", max(times)), measure.gbps(shape, "forward", min(times))],
        }
    return summary


def derive(results: dict) -> None:
    """Add roofline (fraction of the copy bandwidth measured just before the row, at the same shape) and the
    time ratio to torch-native; summarise the copy limit per shape."""
    summary = copy_summary(results)
    results["copy_summary"] = list(summary.values())
    for row in results["rows"]:
        copy = row.get("copy_gbps") or summary.get(shape_key(row["shape"]), {}).get("gbps")
        row["copy_gbps"] = copy
        row["roofline"] = row["gbps"] / copy if copy else None
        native = find(results["rows"], "torch-native", row["pass"], row["shape"])
        row["ratio_to_torch_native"] = row["median_ms"] / native["median_ms"] if native else None
    if summary:
        largest = max(summary, key=lambda shape: shape[0] * shape[1])
        results["copy_gbps"] = summary[largest]["gbps"]
        results["copy_shape"] = list(largest)
    else:
        results["copy_gbps"] = None


# -- targets -------------------------------------------------------------------------------------------
def _missing_reason(results: dict, *impls: str) -> str:
    for impl in impls:
        for entry in results.get("unavailable", []):
            if entry["impl"] == impl:
                return f"{impl} not available: {entry['reason']}"
    return f"{' or '.join(impls)} not measured in this run"


def _ratio_target(results, target_id, text, impl, reference, passes, shape, limit):
    rows = results["rows"]
    mine = [find(rows, impl, p, shape) for p in passes]
    theirs = [find(rows, reference, p, shape) for p in passes]
    target = {"id": target_id, "target": text, "limit": limit, "shape": list(shape), "unit": "time ratio"}
    if not all(mine) or not all(theirs):
        return dict(
            target,
            status="not measured",
            measured=None,
            why=_missing_reason(
                results, *(name for name, found in ((impl, all(mine)), (reference, all(theirs))) if not found)
            ),
        )
    measured = sum(r["median_ms"] for r in mine) / sum(r["median_ms"] for r in theirs)
    return dict(target, measured=measured, status="met" if measured <= limit else "missed")


def targets(results: dict) -> list[dict]:
    """The goals set for the shipped implementations, each met / missed / not measured, with its number.

    NumPy's goals judge numpy-tuned: they ask how fast NumPy can be; the solutions are written to be read."""
    shapes = [shape_key(s) for s in results.get("shapes", [])]
    if not shapes:
        return []
    largest = max(shapes, key=lambda shape: shape[0] * shape[1])
    found = []
    fused = find(results["rows"], "max-fused", "forward", largest)
    entry = {
        "id": "max-fused-roofline",
        "target": "max-fused forward ≥ 0.8 of the copy bandwidth",
        "limit": 0.8,
        "shape": list(largest),
        "unit": "fraction of copy",
    }
    if fused and fused.get("roofline") is not None:
        found.append(dict(entry, measured=fused["roofline"], status="met" if fused["roofline"] >= 0.8 else "missed"))
    else:
        found.append(dict(entry, measured=None, status="not measured", why=_missing_reason(results, "max-fused")))
    found.append(
        _ratio_target(
            results,
            "max-scratch-vs-fused",
            "max-scratch forward ≤ 2× max-fused",
            "max-scratch",
            "max-fused",
            ["forward"],
            largest,
            2.0,
        )
    )
    found.append(
        _ratio_target(
            results,
            "numpy-tuned-forward",
            "numpy-tuned forward ≤ 1.5× torch-native",
            "numpy-tuned",
            "torch-native",
            ["forward"],
            largest,
            1.5,
        )
    )
    found.append(
        _ratio_target(
            results,
            "numpy-tuned-backward",
            "numpy-tuned backward ≤ 2× torch-native",
            "numpy-tuned",
            "torch-native",
            ["backward"],
            largest,
            2.0,
        )
    )
    found.append(
        _ratio_target(
            results,
            "torch-scratch-train",
            "torch-scratch forward+backward ≤ 2.5× torch-native",
            "torch-scratch",
            "torch-native",
            ["forward", "backward"],
            largest,
            2.5,
        )
    )
    for step, cache, limit in CHECKER_TARGETS:
        what = (
            f"`make watch` re-check of s{step} ({cache.removeprefix('watch-')} checks)"
            if "watch" in cache
            else EDIT_WORDS.get(cache, f"{cache} `make s{step}`")
        )
        ratio = cache in EDIT_RATIOS
        entry = {
            "id": f"checker-s{step}-{cache}",
            "target": f"{what} ≤ {limit:g}{'× `mojo precompile` of the folder' if ratio else ' s'}",
            "limit": limit,
            "unit": "time ratio" if ratio else "seconds",
        }
        row = next((r for r in results.get("checker", []) if r["step"] == step and r["cache"] == cache), None)
        measured = None if row is None else row.get("ratio" if ratio else "seconds")
        if measured is None:
            why = (row or {}).get("skipped") or (row or {}).get("error") or "checker latency not measured in this run"
            found.append(dict(entry, measured=None, status="not measured", why=why))
        else:
            found.append(dict(entry, measured=measured, status="met" if measured <= limit else "missed"))
    for target in found:
        if target["status"] == "missed":
            target["why"] = why_missed(target, results)
    return found


# (step, "cold" | "warm" | "watch-quick", seconds): the learner's waits the checker aims for
CHECKER_TARGETS = (
    ("01", "warm", 3.0),
    ("03", "warm", 2.5),
    ("03", "cold", 30.0),
    ("01", "watch-quick", 1.0),
    ("02", "watch-quick", 1.0),
    ("03", "watch-quick", 3.0),
    ("06", "cold", 110.0),  # half the 219 s measured before the checker's rework
    ("06", "edit-quick", 5.0),  # step 06 after an edit of the kernel: multiples of `mojo precompile`'s time
    ("06", "edit-full", 10.0),
    ("06", "new-folder", 60.0),
)
EDIT_RATIOS = ("edit-quick", "edit-full")
EDIT_WORDS = {
    "edit-quick": "a kernel edit judged by the quick pass (`make s06 ARGS=--quick`)",
    "edit-full": "a kernel edit judged by the full check (`make s06`)",
    "new-folder": "a new folder's first full check (`make s06`)",
}


# -- why a target was missed: the mechanism, with this run's own numbers as the evidence -----------------------
def _diagnostic(results: dict, what: str, shape) -> dict | None:
    return next(
        (
            d
            for d in results.get("diagnostics", [])
            if d["what"].startswith(what) and shape_key(d["shape"]) == shape_key(shape)
        ),
        None,
    )


def _page_faults(results: dict, shape) -> str:
    """One sentence comparing a copy into new memory with a copy into existing memory, when measured."""
    copy = {shape_key(e["shape"]): e for e in results.get("copy_summary", [])}.get(shape_key(shape))
    clone = _diagnostic(results, "torch.clone", shape)
    fresh = _diagnostic(results, "np.copy", shape)
    if not copy or not (clone or fresh):
        return ""
    parts = [f"{d['what']} {d['median_ms']:.1f} ms" for d in (fresh, clone) if d]
    return (
        f" Fresh memory is expensive here: copying the array into existing memory took {copy['median_ms']:.1f} ms, "
        f"into a new one {' and '.join(parts)} (first-touch page faults; NumPy asks Linux for huge pages, "
        "PyTorch's CPU allocator only with THP_MEM_ALLOC_ENABLE=1)."
    )


def _threads_of(results: dict, library: str):
    threads = results.get("threads", {})
    if library == "torch":
        return threads.get("torch", {}).get("intra_op", "?")
    if library == "max":
        return threads.get("max", {}).get("runtime_workers", "?")
    return 1


def why_missed(target: dict, results: dict) -> str:
    shape = target.get("shape")
    rows = results["rows"]
    load = results.get("machine", {}).get("load_average", ["?"])[0]
    end = (results.get("machine_end") or {}).get("load_average") or ["?"]
    busy = f"load average {load} at the start, {end[0]} at the end, on {results.get('machine', {}).get('cores')} cores"
    if target["id"] == "max-fused-roofline":
        fused = find(rows, "max-fused", "forward", shape)
        mojo = find(rows, "mojo-fast", "forward", shape)
        copy = {shape_key(e["shape"]): e for e in results.get("copy_summary", [])}.get(shape_key(shape), {})
        low, high = copy.get("gbps_range", ["?", "?"])
        text = (
            f"F.layer_norm is a single kernel, so the graph adds no traffic; what is left is how well that "
            f"kernel streams memory on {_threads_of(results, 'max')} worker threads, and how steady the machine "
            f"is. It ran at {fused['gbps']:.1f} GB/s against {fused['copy_gbps']:.1f} GB/s for the copy measured "
            f"just before it; copies of this shape ranged from {low:.1f} to {high:.1f} GB/s during the run "
            f"({busy})."
        )
        if fused.get("min_ms"):
            best = measure.gbps(shape_key(shape), "forward", fused["min_ms"]) / fused["copy_gbps"]
            text += f" Its fastest call took {fused['min_ms']:.1f} ms against a median of {fused['median_ms']:.1f} ms: "
            if best >= 0.8:
                text += f"{100 * best:.0f}% of the copy: the kernel can stream at the limit, the median shows "
                text += "interference."
            else:
                text += f"even that is only {100 * best:.0f}% of the copy."
        if mojo:
            text += f" The step-06 Mojo kernel reached {100 * mojo['roofline']:.0f}% of its copy in the same run."
        return text
    if target["id"] == "max-scratch-vs-fused":
        fused, scratch = find(rows, "max-fused", "forward", shape), find(rows, "max-scratch", "forward", shape)
        return (
            "The composed graph has two reductions (the mean, then the mean of squares) between element-wise ops. "
            "The compiler fuses chains of element-wise ops, but the reductions split the work into several kernels "
            "whose (N, D) intermediates go through memory, where F.layer_norm is one pass. "
            f"Here: {scratch['median_ms']:.1f} ms (best {scratch.get('min_ms', 0):.1f}) against "
            f"{fused['median_ms']:.1f} ms (best {fused.get('min_ms', 0):.1f})."
        )
    if target["id"] in ("numpy-tuned-forward", "numpy-tuned-backward"):
        pass_ = target["id"].removeprefix("numpy-tuned-")
        mine, torch = find(rows, "numpy-tuned", pass_, shape), find(rows, "torch-native", pass_, shape)
        copies = mine["median_ms"] / (measure.bytes_moved(shape_key(shape), "forward") / mine["copy_gbps"] / 1e6)
        floor = {"forward": "1 read and 1 write", "backward": "2 reads and 1 write"}[pass_]
        return (
            f"NumPy evaluates one operation at a time, on one thread: even tuned (in place, no squared "
            f"temporary), every operation of the {pass_} in bench/tuned_numpy.py is a full pass over "
            f"(N, D) memory. It took as long as {copies:.1f} copies of the array "
            f"where the floor is {floor}; torch's kernel is one pass on {_threads_of(results, 'torch')} threads "
            f"({torch['median_ms']:.0f} ms against {mine['median_ms']:.0f} ms)." + _page_faults(results, shape)
        )
    if target["id"] == "torch-scratch-train":
        return (
            "The from-scratch module runs about 8 tensor ops forward and autograd replays one backward op per "
            "forward op, each a full pass that allocates a new (N, D) tensor; torch's native layer_norm is one "
            "kernel per pass." + _page_faults(results, shape)
        )
    if target["id"].startswith("checker-"):
        step, cache = target["id"].split("-", 2)[1].removeprefix("s"), target["id"].split("-", 2)[2]
        row = next((r for r in results.get("checker", []) if r["step"] == step and r["cache"] == cache), {})
        if cache in EDIT_WORDS and row.get("parts"):
            parts = row["parts"]
            build = next(
                (seconds for name, seconds in parts.items() if name.startswith("the Mojo package compiles")), 0
            )
            graph = next((seconds for name, seconds in parts.items() if name.startswith("compiled Module")), 0)
            reason = (
                f"the checker took {row['seconds']:.1f} s, `mojo precompile` of the same folder "
                f"{row.get('precompile_seconds') or 0:.1f} s. The checker's own build of the kernel (`mojo build` of "
                f"its harness, an executable, where precompile only checks and packages the source) took {build:.1f} s"
            )
            empty = next(
                (r.get("empty_build_seconds") for r in results.get("checker", []) if r.get("empty_build_seconds")), None
            )
            if empty:
                reason += f"; `mojo build` of an empty program took {empty:.1f} s in the same run"
            if graph:
                reason += (
                    f"; MAX compiling the custom op's graph for the compiled Module's check took {graph:.1f} s of it, "
                    "a compile the checker waits for and MAX repeats after every edit of the kernel"
                )
            reason += f"; {row['seconds'] - row.get('in_checks', 0):.1f} s passed outside the checks"
        elif step in ("03", "06") and row.get("slowest"):
            reason = "most of the wait is in " + " and ".join(
                f"“{check['name'][:60]}” ({check['seconds']:.1f} s)" for check in row["slowest"]
            )
            if results.get("max_import_seconds"):
                reason += f"; importing MAX alone took {results['max_import_seconds']:.1f} s"
            if step == "03" and cache == "cold":
                reason = (
                    "a MAX compile costs seconds whatever its size, and two are left, run side by side when the "
                    "machine has two cores: the eager kernels of a LayerNorm, compiled together when the first "
                    f"check builds one, and the learner's compile_layer_norm graph, in a second process; {reason}"
                )
        elif step in ("03", "06"):
            reason = (
                "the checker's child process imports MAX, then loads its compiled graphs and eager kernels "
                "from the cache, or, cold, compiles every one of them"
            )
            if results.get("max_import_seconds"):
                reason += f"; importing MAX alone took {results['max_import_seconds']:.1f} s"
            cold = next((r for r in results.get("checker", []) if r["step"] == step and r["cache"] == "cold"), {})
            if target["id"].endswith("cold") and cold.get("cache_files"):
                reason += (
                    f"; the cold run compiled and stored {cold['cache_files']} files "
                    f"({cold['cache_mb']:.0f} MB) in the empty cache"
                )
        else:
            reason = "the checker starts a child process and imports NumPy in it"
        failed = "" if row.get("passed", True) else f" The run failed: {row.get('error', 'a check did not pass')}."
        run = results.get("checker_run")
        if run:  # timed apart from the kernels: that run's load
            start, end = _checker_run_loads(run)
            busy = f"load average {start} at the start, {end} at the end"
        return f"{reason} ({busy}).{failed}"
    return ""


# -- stdout table ----------------------------------------------------------------------------------------
def _fmt(value, spec, missing="–"):
    return missing if value is None else format(value, spec)


def table(results: dict) -> str:
    lines = []
    copy_by_shape = {shape_key(e["shape"]): e for e in results.get("copy_summary", [])}
    for shape in (shape_key(s) for s in results["shapes"]):
        copy = copy_by_shape.get(shape)
        lines.append(
            f"\n{shape[0]}×{shape[1]} float32"
            + (f"   limit: NumPy copy {copy['median_ms']:.2f} ms = {copy['gbps']:.1f} GB/s" if copy else "")
        )
        lines.append(
            f"  {'implementation':<20} {'pass':<9} {'median ms':>10} {'GB/s':>7} {'of copy':>8} {'× torch':>8}"
        )
        for fresh in results.get("diagnostics", []):
            if shape_key(fresh["shape"]) == shape:
                lines.append(f"  (into new memory: {fresh['what']} {fresh['median_ms']:.2f} ms)")
        for row in results["rows"]:
            if shape_key(row["shape"]) != shape:
                continue
            lines.append(
                f"  {row['impl']:<20} {row['pass']:<9} {row['median_ms']:>10.2f} {row['gbps']:>7.1f} "
                f"{_fmt(row['roofline'] and 100 * row['roofline'], '>7.0f'):>7}% "
                f"{_fmt(row['ratio_to_torch_native'], '>7.2f'):>7}×"
            )
    for entry in results.get("unavailable", []):
        lines.append(f"  {entry['impl']} ({entry.get('pass', 'all')}): not available: {entry['reason']}")
    for entry in results.get("skipped", []):
        lines.append(f"  {entry['impl']} {entry['pass']} {entry['shape'][0]}×{entry['shape'][1]}: {entry['reason']}")
    if results.get("checker"):
        lines.append("\nchecker latency (`python -m tests.check NN --solution`):")
        for row in results["checker"]:
            seconds = row.get("seconds")
            state = row.get("skipped") or ("passed" if row.get("passed") else "FAILED " + row.get("error", ""))
            lines.append(f"  s{row['step']} {row['cache']:<5} {_fmt(seconds, '>7.1f')} s   {state}")
    lines.append("\ntargets:")
    for target in results.get("targets", []):
        measured = _fmt(target["measured"], ".2f")
        lines.append(
            f"  [{target['status']:^12}] {target['target']}: {measured}"
            + (f"  ({target['why']})" if target.get("why") and target["status"] == "not measured" else "")
        )
    return "\n".join(lines)


# -- chart -------------------------------------------------------------------------------------------------
COLOURS = {
    "numpy": "#4c72b0",
    "numpy-tuned": "#1f3b73",
    "torch-native": "#dd8452",
    "torch-scratch": "#f2b880",
    "max-fused": "#55a868",
    "max-scratch": "#a6d39a",
    "max-eager": "#c7e9c0",
    "mojo-naive": "#c44e52",
    "mojo-fast": "#8172b3",
}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = [shape_key(s) for s in results["shapes"]]
    copy_by_shape = {shape_key(e["shape"]): e["gbps"] for e in results.get("copy_summary", [])}
    passes = [p for p in ("forward", "backward") if any(r["pass"] == p for r in results["rows"])] or ["forward"]
    figure, axes = plt.subplots(
        1,
        len(passes),
        figsize=(6.5 * len(passes), 4.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [2 if p == "forward" else 1.2 for p in passes]},
    )
    for axis, pass_ in zip(axes[0], passes, strict=True):
        names = list(dict.fromkeys(r["impl"] for r in results["rows"] if r["pass"] == pass_))
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            xs, heights = [], []
            for j, shape in enumerate(shapes):
                row = find(results["rows"], name, pass_, shape)
                if row:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    heights.append(row["gbps"])
            mine = name.startswith("mine-")  # the learner's own files: hatched, in the colour of the solution
            axis.bar(
                xs,
                heights,
                width,
                label=name,
                color=COLOURS.get(name.removeprefix("mine-"), "#999999"),
                edgecolor="black" if mine else "none",
                hatch="//" if mine else None,
            )
        for j, shape in enumerate(shapes):
            if shape in copy_by_shape:
                axis.hlines(
                    copy_by_shape[shape],
                    j - 0.45,
                    j + 0.45,
                    colors="black",
                    linestyles="--",
                    linewidth=1.2,
                    label="NumPy copy (limit)" if j == 0 else None,
                )
        axis.set_xticks(range(len(shapes)), [f"{n}×{d}" for n, d in shapes])
        axis.set_ylabel("GB/s (higher is better)")
        axis.set_title(f"LayerNorm {pass_}, float32")
        tallest = max([*(b.get_height() for b in axis.patches), *(copy_by_shape.values() or [0])], default=1)
        axis.set_ylim(0, 1.45 * tallest)  # headroom: the legend sits above the bars and the limit
        axis.legend(fontsize=8, loc="upper center", ncol=3)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


# -- the book page ------------------------------------------------------------------------------------------
def _threads_line(threads: dict) -> str:
    parts = []
    numpy = threads.get("numpy")
    if numpy:
        blas = ", ".join(f"{k}={v}" for k, v in numpy.get("blas", {}).items()) or "default"
        parts.append(
            f"NumPy: 1 thread for element-wise work and reductions (BLAS pool: {blas}, from {numpy.get('blas_source')})"
        )
    torch = threads.get("torch")
    if torch:
        parts.append(f"PyTorch: {torch['intra_op']} threads (`torch.get_num_threads()`)")
    max_ = threads.get("max")
    if max_:
        parts.append(f"MAX: {max_['runtime_workers']} runtime worker threads (counted in the process)")
    return "; ".join(parts) or "not recorded"


def _impl_lines(results: dict) -> list[str]:
    lines = []
    for name, impl in results.get("impls", {}).items():
        files = sorted({path for path in impl.get("sources", {}).values() if path})
        where = f" (`{'`, `'.join(files)}`)" if files else ""
        lines.append(f"- **{name}**{where}: {impl.get('note', '')}. Passes: {', '.join(impl.get('passes', []))}.")
    if any(row["impl"].startswith("mine-") for row in results.get("rows", [])):
        lines.append("- **mine-…**: your `steps/step_NN.py`, measured like the solution it mirrors (`--mine`).")
    return lines


def numbers(results: dict) -> str:
    """The measured part of the performance page (Markdown): the machine, the tables, the targets.

    `docs/src/performance.md` is prose written by hand; it includes this file.
    """
    machine = results.get("machine", {})
    load = ""
    if machine.get("load_average"):
        end = (results.get("machine_end") or {}).get("load_average") or ["?"]
        load = f", load average {machine['load_average'][0]:.1f} at the start and {end[0]} at the end"
    kind = {"quick": " (quick run)", "tiny": " (tiny run: the numbers mean nothing)"}.get(results.get("mode"), "")
    out = [
        "<!-- Generated by `make bench` (bench/report.py) from bench/results.json; do not edit. -->",
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores{load}. "
        f"Run on {results.get('date', '?')}{kind}.",
        "",
        f"Threads: {_threads_line(results.get('threads', {}))}.",
        "",
        "Implementations:",
        "",
        *_impl_lines(results),
        "",
    ]
    copy_by_shape = {shape_key(e["shape"]): e for e in results.get("copy_summary", [])}
    for shape in (shape_key(s) for s in results["shapes"]):
        copy = copy_by_shape.get(shape)
        megabytes = shape[0] * shape[1] * 4 / 2**20
        out.append(f"### {shape[0]}×{shape[1]} ({megabytes:.0f} MiB per array)")
        out.append("")
        if copy:
            low, high = copy.get("gbps_range", [copy["gbps"]] * 2)
            out.append(
                f"Limit: a NumPy copy takes {copy['median_ms']:.2f} ms, {copy['gbps']:.1f} GB/s (median of "
                f"{copy.get('measurements', 1)} measurements in this run, from {low:.1f} to {high:.1f} GB/s)."
            )
            fresh = [d for d in results.get("diagnostics", []) if shape_key(d["shape"]) == shape]
            if fresh:
                out.append(
                    "The same copy into newly allocated memory, as every implementation's output is: "
                    + ", ".join(f"{d['what']} {d['median_ms']:.2f} ms" for d in fresh)
                    + "."
                )
            out.append("")
        out.append("| implementation | pass | median ms | best ms | GB/s | of copy | × torch-native |")
        out.append("|---|---|--:|--:|--:|--:|--:|")
        for row in results["rows"]:
            if shape_key(row["shape"]) == shape:
                roofline = _fmt(row["roofline"] and 100 * row["roofline"], ".0f")
                out.append(
                    f"| {row['impl']} | {row['pass']} | {row['median_ms']:.2f} | {_fmt(row.get('min_ms'), '.2f')} | "
                    f"{row['gbps']:.1f} | "
                    f"{roofline}% | {_fmt(row['ratio_to_torch_native'], '.2f')} |"
                )
        out.append("")
    missing = results.get("unavailable", []) + results.get("skipped", [])
    if missing:
        out.append("Not measured:")
        out.append("")
        for entry in results.get("unavailable", []):
            out.append(f"- {entry['impl']} ({entry.get('pass', 'all passes')}): not available — {entry['reason']}")
        for entry in results.get("skipped", []):
            n, d = entry["shape"]
            out.append(f"- {entry['impl']} {entry['pass']} at {n}×{d}: {entry['reason']}")
        out.append("")
    out += [
        "## Targets",
        "",
        "Goals for the shipped implementations, judged at the largest shape of the run, ratios from this one run.",
        "",
        "| target | measured | status |",
        "|---|--:|---|",
    ]
    for target in results.get("targets", []):
        unit = {"seconds": " s", "fraction of copy": " of copy", "time ratio": "×"}.get(target["unit"], "")
        measured = "–" if target["measured"] is None else f"{target['measured']:.2f}{unit}"
        out.append(f"| {target['target']} | {measured} | {target['status']} |")
    out.append("")
    explained = [t for t in results.get("targets", []) if t["status"] != "met" and t.get("why")]
    if explained:
        out.append("Why the misses, and what was not measured:")
        out.append("")
        for target in explained:
            out.append(f"- **{target['target']}** ({target['status']}): {target['why']}")
        out.append("")
    if results.get("checker"):
        out += [
            "## How long the checker takes",
            "",
            "`python -m tests.check NN --solution` from start to exit. *Cold*: an empty MAX cache (a fresh "
            "`MODULAR_DERIVED_PATH`), so every graph and kernel is compiled; *warm*: the same command again.",
            "",
            *_checker_run_line(results.get("checker_run")),
            "| step | cache | seconds | result |",
            "|---|---|--:|---|",
        ]
        for row in results["checker"]:
            if row["cache"] in EDIT_WORDS:
                continue
            state = row.get("skipped") or ("all checks pass" if row.get("passed") else "failed " + row.get("error", ""))
            out.append(f"| s{row['step']} | {row['cache']} | {_fmt(row.get('seconds'), '.1f')} | {state} |")
        out.append("")
        out += _edit_lines([row for row in results["checker"] if row["cache"] in EDIT_WORDS])
        if results.get("max_import_seconds"):
            seconds = results["max_import_seconds"]
            out.append(f"For scale: `import max.experimental.nn` alone takes {seconds:.1f} s here.")
            out.append("")
    return "\n".join(out) + "\n"


def _edit_lines(rows: list[dict]) -> list[str]:
    """Step 06 after an edit of its kernel: the checker's time against the compiler's, and where it goes."""
    if not rows:
        return []
    out = [
        "### Step 06 after an edit of the kernel",
        "",
        "A copy of the solution, checked once in full, then edited (a real change to `layer_norm.mojo` each time, "
        "so every phase compiles new code); `mojo precompile` of the edited folder is timed just before the "
        "checker, in the same run. *new-folder*: a folder never checked before, with content never compiled.",
        "",
        "| phase | `mojo precompile` s | checker s | × precompile | result | where the time goes |",
        "|---|--:|--:|--:|---|---|",
    ]
    for row in rows:
        parts = row.get("parts") or {}
        slowest = sorted(parts.items(), key=lambda item: -item[1])
        where = "; ".join(f"{name[:48]}: {seconds:.1f} s" for name, seconds in slowest)
        outside = row["seconds"] - row.get("in_checks", 0) if row.get("seconds") is not None else None
        if outside is not None and parts:
            where += f"; outside the checks (start-up, the glue's import, the speed line): {outside:.1f} s"
        state = "all checks pass" if row.get("passed") else "failed " + row.get("error", "")
        out.append(
            f"| {row['cache']} | {_fmt(row.get('precompile_seconds'), '.1f')} | {_fmt(row.get('seconds'), '.1f')} | "
            f"{_fmt(row.get('ratio'), '.1f')} | {state} | {where} |"
        )
    return [*out, ""]


def _checker_run_line(run: dict | None) -> list[str]:
    """When the checker was timed apart from the kernels (`--checker-only`), when and how busy the machine was."""
    if not run:
        return []
    start, end = _checker_run_loads(run)
    return [
        f"Timed apart from the tables above (`make bench ARGS=--checker-only`) on {run.get('date', '?')}, "
        f"load average {start} at the start and {end} at the end.",
        "",
    ]


def _checker_run_loads(run: dict) -> tuple:
    """The one-minute load average at the start and at the end of a `--checker-only` run ("?" if unknown)."""
    return tuple((run.get(key) or ["?"])[0] for key in ("load_average", "load_average_end"))
