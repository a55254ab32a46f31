"""The benchmark runs end to end at a tiny size, and its derived figures follow the convention.

No timing is asserted: only that what is reported is consistent with what was measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import impls, measure, report, run
from bench.checker_latency import MAX_CACHE_ENV
from tests.check import REPO_ROOT

ROW_KEYS = {"impl", "pass", "shape", "dtype", "median_ms", "gbps", "roofline", "ratio_to_torch_native"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run over a copy of the solutions folder holding only steps 01 and 02, and a step 04
    that does not import: numpy and torch-native are measured, the rest must be reported."""
    root = tmp_path_factory.mktemp("bench")
    solutions = root / "solutions"
    solutions.mkdir()
    for name in ("solution_01.py", "solution_02.py"):
        shutil.copy(REPO_ROOT / "solutions" / name, solutions / name)
    (solutions / "solution_04.py").write_text("raise RuntimeError('half-written file')\n")
    committed = {
        path: path.read_bytes()
        for path in (
            REPO_ROOT / "bench" / "results.json",
            REPO_ROOT / "bench" / "numbers.md",
            REPO_ROOT / "docs" / "src" / "figures" / "bench.png",
        )
        if path.exists()
    }
    out = root / "out"
    code = run.main(
        [
            "--tiny",
            "--out",
            str(out),
            "--solutions",
            str(solutions),
            "--no-checker-latency",
            "--impl",
            "numpy,torch-native,torch-scratch,max-fused,mojo-fast",
        ]
    )
    assert code == 0
    return {"out": out, "results": json.loads((out / "results.json").read_text()), "committed": committed}


def test_schema(tiny_run):
    results = tiny_run["results"]
    assert results["mode"] == "tiny"
    assert results["copy_gbps"] > 0
    assert {"numpy", "torch"} <= set(results["threads"])
    assert results["threads"]["torch"]["intra_op"] >= 1
    measured = {(row["impl"], row["pass"]) for row in results["rows"]}
    assert measured == {
        ("numpy", "forward"),
        ("numpy", "backward"),
        ("torch-native", "forward"),
        ("torch-native", "backward"),
    }
    for row in results["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["dtype"] == "float32"
        assert row["pass"] in ("forward", "backward")
        assert row["shape"] == [64, 128]
        assert row["median_ms"] > 0 and row["gbps"] > 0 and row["roofline"] > 0
    assert {t["id"] for t in results["targets"]} >= {"max-fused-roofline", "numpy-forward", "checker-s03-cold"}
    for target in results["targets"]:
        assert target["status"] in ("met", "missed", "not measured")


def test_missing_implementations_are_reported_not_fatal(tiny_run):
    unavailable = {(entry["impl"], entry.get("pass")): entry["reason"] for entry in tiny_run["results"]["unavailable"]}
    assert "does not exist" in unavailable[("max-fused", "forward")]
    assert "does not exist" in unavailable[("mojo-fast", "forward")]
    assert "does not import" in unavailable[("torch-scratch", "forward")]
    assert "half-written file" in unavailable[("torch-scratch", "backward")]
    targets = {t["id"]: t for t in tiny_run["results"]["targets"]}
    assert targets["max-fused-roofline"]["status"] == "not measured"
    assert "max-fused not available" in targets["max-fused-roofline"]["why"]
    assert "torch-scratch not available" in targets["torch-scratch-train"]["why"]
    page = (tiny_run["out"] / "numbers.md").read_text()
    assert "max-fused (forward): not available" in page


def test_figures_follow_the_convention(tiny_run):
    results = tiny_run["results"]
    copies = {round(entry["gbps"], 9) for entry in results["copy"]}
    for entry in results["copy"] + results["copy_summary"]:
        n, d = entry["shape"]
        assert entry["gbps"] == pytest.approx(2 * n * d * 4 / (entry["median_ms"] * 1e-3) / 1e9, rel=1e-9)
    for row in results["rows"]:
        n, d = row["shape"]
        arrays = {"forward": 2, "backward": 3}[row["pass"]]
        assert row["gbps"] == pytest.approx(arrays * n * d * 4 / (row["median_ms"] * 1e-3) / 1e9, rel=1e-9)
        assert round(row["copy_gbps"], 9) in copies  # the copy measured just before this row
        assert row["roofline"] == pytest.approx(row["gbps"] / row["copy_gbps"], rel=1e-9)
        native = report.find(results["rows"], "torch-native", row["pass"], row["shape"])
        assert row["ratio_to_torch_native"] == pytest.approx(row["median_ms"] / native["median_ms"], rel=1e-9)
    targets = {t["id"]: t for t in results["targets"]}
    numpy_forward = report.find(results["rows"], "numpy", "forward", [64, 128])
    native_forward = report.find(results["rows"], "torch-native", "forward", [64, 128])
    assert targets["numpy-forward"]["measured"] == pytest.approx(
        numpy_forward["median_ms"] / native_forward["median_ms"]
    )
    assert targets["numpy-forward"]["status"] == ("met" if targets["numpy-forward"]["measured"] <= 1.5 else "missed")


def test_outputs_written_and_committed_ones_untouched(tiny_run):
    out = tiny_run["out"]
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = (out / "numbers.md").read_text()
    assert "| numpy | forward |" in numbers and "## Targets" in numbers
    for path, content in tiny_run["committed"].items():
        assert path.read_bytes() == content, f"a --out run rewrote {path}"


def test_render_only_rebuilds_the_numbers_from_results(tiny_run, tmp_path):
    shutil.copy(tiny_run["out"] / "results.json", tmp_path / "results.json")
    assert run.main(["--render-only", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "numbers.md").read_text() == (tiny_run["out"] / "numbers.md").read_text()


def test_checker_only_replaces_the_checker_rows_and_keeps_the_kernels(tiny_run, tmp_path, monkeypatch):
    shutil.copy(tiny_run["out"] / "results.json", tmp_path / "results.json")
    slow = {"name": "compile_layer_norm: one graph", "seconds": 40.0}
    rows = [{"step": "03", "cache": "cold", "seconds": 41.0, "passed": True, "checks": 16, "slowest": [slow]}]
    monkeypatch.setattr(run.checker_latency, "measure", lambda steps: rows if steps == ["03"] else [])
    monkeypatch.setattr(run.checker_latency, "max_import_seconds", lambda: 0.5)
    assert run.main(["--checker-only", "--checker-steps", "03", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["rows"] == tiny_run["results"]["rows"]  # the kernels' rows are those of the earlier run
    assert results["checker"] == rows and results["checker_run"]["date"]
    numbers = (tmp_path / "numbers.md").read_text()
    assert "Timed apart from the tables above" in numbers and "| s03 | cold | 41.0 |" in numbers
    missed = next(t for t in results["targets"] if t["id"] == "checker-s03-cold")
    assert missed["status"] == "missed" and "(40.0 s)" in missed["why"]  # the slowest check, as measured


def test_the_book_page_includes_the_numbers_and_the_chart():
    page = (REPO_ROOT / "docs" / "src" / "performance.md").read_text()
    assert "{{#include ../../bench/numbers.md}}" in page and "](figures/bench.png)" in page


def _synthetic(rows, copy_gbps=50.0, checker=()):
    shape = [1000, 1000]
    copy_ms = 2 * shape[0] * shape[1] * 4 / (copy_gbps * 1e9) * 1e3
    results = {
        "shapes": [shape],
        "copy": [{"shape": shape, "median_ms": copy_ms, "gbps": copy_gbps}] * 3,
        "rows": [],
        "unavailable": [],
        "checker": list(checker),
    }
    for impl, pass_, ms in rows:
        results["rows"].append(
            {
                "impl": impl,
                "pass": pass_,
                "shape": shape,
                "dtype": "float32",
                "median_ms": ms,
                "gbps": measure.gbps(tuple(shape), pass_, ms),
            }
        )
    report.derive(results)
    results["targets"] = {t["id"]: t for t in report.targets(results)}
    return results


def test_targets_judged_from_the_numbers():
    # copy at 50 GB/s of 8 MB: 0.16 ms; max-fused at 0.19 ms is 0.84 of it
    results = _synthetic(
        [
            ("max-fused", "forward", 0.19),
            ("max-scratch", "forward", 0.5),
            ("numpy", "forward", 1.4),
            ("torch-native", "forward", 1.0),
            ("numpy", "backward", 2.5),
            ("torch-native", "backward", 1.0),
            ("torch-scratch", "forward", 2.0),
            ("torch-scratch", "backward", 3.0),
        ],
        checker=[{"step": "01", "cache": "warm", "seconds": 1.0}, {"step": "03", "cache": "warm", "seconds": 12.0}],
    )
    targets = results["targets"]
    assert targets["max-fused-roofline"]["measured"] == pytest.approx(0.16 / 0.19)
    assert targets["max-fused-roofline"]["status"] == "met"
    assert targets["max-scratch-vs-fused"]["status"] == "missed"
    assert targets["numpy-forward"]["status"] == "met"
    assert targets["numpy-backward"]["status"] == "missed"
    assert targets["torch-scratch-train"]["measured"] == pytest.approx(5.0 / 2.0)
    assert targets["torch-scratch-train"]["status"] == "met"
    assert targets["checker-s01-warm"]["status"] == "met"
    assert targets["checker-s03-warm"]["status"] == "missed"
    assert targets["checker-s03-cold"]["status"] == "not measured"
    for target in targets.values():
        if target["status"] == "missed":
            assert target["why"], f"{target['id']} is missed without a reason"


def test_mine_uses_the_step_files_that_pass(monkeypatch):
    monkeypatch.setattr(run, "passing_steps", lambda steps: {s: "passes" if s == "01" else "fails" for s in steps})
    entries, unavailable = run.mine_entries(
        [impls.BY_NAME["numpy"], impls.BY_NAME["mojo-fast"], impls.BY_NAME["torch-native"]]
    )
    assert entries == [
        {
            "name": "mine-numpy",
            "base": "numpy",
            "group": "numpy",
            "sources": {"forward": str(REPO_ROOT / "steps" / "step_01.py")},
        }
    ]
    assert {(u["impl"], u["pass"]) for u in unavailable} == {("mine-numpy", "backward"), ("mine-mojo-fast", "forward")}
    assert "steps/step_02.py fails" in unavailable[0]["reason"]


def test_cold_cache_variable_is_the_one_max_reads(tmp_path):
    """The cold checker run must compile into a temporary cache, never the learner's own."""
    code = "from max._core import engine; print(engine.max_cache_dir())"
    env = dict(os.environ, **{MAX_CACHE_ENV: str(tmp_path)})
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(printed.stdout.strip()).is_relative_to(tmp_path)
