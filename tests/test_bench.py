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

import numpy as np
import pytest

from bench import impls, measure, report, run
from bench.checker_latency import MAX_CACHE_ENV
from tests.check import REPO_ROOT
from tests.check.kit.judging import layernorm, layernorm_grads, random_case

ROW_KEYS = {"impl", "pass", "shape", "dtype", "median_ms", "gbps", "roofline", "ratio_to_torch_native"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run over a copy of the solutions folder holding only steps 01 and 02, and a step 04
    that does not import: numpy, numpy-tuned and torch-native are measured, the rest must be reported."""
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
            "numpy,numpy-tuned,torch-native,torch-scratch,max-fused,mojo-fast",
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
        ("numpy-tuned", "forward"),
        ("numpy-tuned", "backward"),
        ("torch-native", "forward"),
        ("torch-native", "backward"),
    }
    for row in results["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["dtype"] == "float32"
        assert row["pass"] in ("forward", "backward")
        assert row["shape"] == [64, 128]
        assert row["median_ms"] > 0 and row["gbps"] > 0 and row["roofline"] > 0
    assert {t["id"] for t in results["targets"]} >= {"max-fused-roofline", "numpy-tuned-forward", "checker-s03-cold"}
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
    tuned_forward = report.find(results["rows"], "numpy-tuned", "forward", [64, 128])
    native_forward = report.find(results["rows"], "torch-native", "forward", [64, 128])
    target = targets["numpy-tuned-forward"]
    assert target["measured"] == pytest.approx(tuned_forward["median_ms"] / native_forward["median_ms"])
    assert target["status"] == ("met" if target["measured"] <= 1.5 else "missed")


def test_outputs_written_and_committed_ones_untouched(tiny_run):
    out = tiny_run["out"]
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = (out / "numbers.md").read_text()
    assert "| numpy | forward |" in numbers and "| numpy-tuned | forward |" in numbers and "## Targets" in numbers
    assert "- **numpy-tuned** (`bench/tuned_numpy.py`)" in numbers  # described, from its own file
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
            ("numpy", "forward", 3.0),  # the solutions are not judged for speed: the tuned version is
            ("numpy-tuned", "forward", 1.4),
            ("torch-native", "forward", 1.0),
            ("numpy", "backward", 1.5),
            ("numpy-tuned", "backward", 2.5),
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
    assert targets["numpy-tuned-forward"]["measured"] == pytest.approx(1.4)
    assert targets["numpy-tuned-forward"]["status"] == "met"
    assert targets["numpy-tuned-backward"]["status"] == "missed"
    assert "bench/tuned_numpy.py" in targets["numpy-tuned-backward"]["why"]
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
    entries, unavailable = run.mine_entries(  # numpy-tuned is the benchmark's own: no step file mirrors it
        [impls.BY_NAME[name] for name in ("numpy", "numpy-tuned", "mojo-fast", "torch-native")]
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


# -- the solutions and the tuned NumPy: two implementations of the same maths -------------------------------
def test_the_bench_knows_the_solutions_and_the_tuned_numpy_apart():
    teaching, tuned = impls.BY_NAME["numpy"], impls.BY_NAME["numpy-tuned"]
    assert teaching.group == tuned.group == "numpy" and teaching.passes == tuned.passes == ("forward", "backward")
    assert teaching.sources == {"forward": "solutions/solution_01.py", "backward": "solutions/solution_02.py"}
    assert set(tuned.sources.values()) == {"bench/tuned_numpy.py"}
    sources = run.solution_sources(tuned, REPO_ROOT / "elsewhere")  # --solutions moves the solutions only
    assert {Path(path) for path in sources.values()} == {REPO_ROOT / "bench" / "tuned_numpy.py"}
    assert "solution" not in tuned.note and tuned.note != teaching.note


def tuned_numpy():
    return impls.load_file(REPO_ROOT / impls.BY_NAME["numpy-tuned"].sources["forward"])


@pytest.mark.parametrize("row_gamma", [False, True], ids=["gamma (D,)", "gamma (1, D)"])
def test_the_tuned_numpy_computes_what_the_oracle_does(row_gamma):
    x, gamma, beta = random_case(3, (9, 17))
    if row_gamma:
        gamma, beta = gamma.reshape(1, -1), beta.reshape(1, -1)
    dy = np.random.default_rng(4).standard_normal(x.shape)
    given = [array.copy() for array in (x, gamma, beta, dy)]
    y, cache = tuned_numpy().layernorm_forward(x, gamma, beta, 0.1)
    cached = [np.copy(item) for item in cache]
    dx, dgamma, dbeta = tuned_numpy().layernorm_backward(dy, cache)
    np.testing.assert_allclose(y, layernorm(x, gamma, beta, 0.1), rtol=0, atol=1e-12)
    assert dx.shape == x.shape and dgamma.shape == dbeta.shape == gamma.shape
    for mine, oracle in zip((dx, dgamma, dbeta), layernorm_grads(x, gamma, 0.1, dy), strict=True):
        np.testing.assert_allclose(mine.reshape(oracle.shape), oracle, rtol=0, atol=1e-12)
    for before, after in zip(given + cached, [x, gamma, beta, dy, *cache], strict=True):
        np.testing.assert_array_equal(before, after)  # nothing it was given is written in place


def test_the_tuned_numpy_is_stable_and_keeps_float32():
    """Large means in float32, as the solution is checked: the centred two-pass variance, not E[x²] - E[x]²."""
    x, gamma, beta = random_case(5, (8, 64), dtype="float32")
    x = (x + np.float32(1e4)).astype(np.float32)
    y, _ = tuned_numpy().layernorm_forward(x, gamma, beta, 1e-5)
    assert y.dtype == np.float32
    assert np.max(np.abs(y - layernorm(x, gamma, beta, 1e-5))) < 1e-2


@pytest.mark.parametrize("pass_", ["forward", "backward"])
def test_the_call_the_bench_times_for_the_tuned_numpy_is_right(pass_):
    """Through the benchmark's own path (registration, source, prepare), at a tiny shape, without timing."""
    impl, shape = impls.BY_NAME["numpy-tuned"], (16, 32)
    source = Path(run.solution_sources(impl, REPO_ROOT / "solutions")[pass_])
    result = impl.prepare(impl, source, shape, pass_)()
    data = {name: array.astype(np.float64) for name, array in impls.inputs(shape).items()}
    if pass_ == "forward":
        expected, found = [layernorm(data["x"], data["gamma"], data["beta"], impls.EPS)], [result[0]]
    else:
        expected, found = layernorm_grads(data["x"], data["gamma"], impls.EPS, data["dy"]), result
    for mine, oracle in zip(found, expected, strict=True):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, oracle, rtol=1e-4, atol=1e-4)


def test_cold_cache_variable_is_the_one_max_reads(tmp_path):
    """The cold checker run must compile into a temporary cache, never the learner's own."""
    code = "from max._core import engine; print(engine.max_cache_dir())"
    env = dict(os.environ, **{MAX_CACHE_ENV: str(tmp_path)})
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(printed.stdout.strip()).is_relative_to(tmp_path)


def test_step_06_edit_targets_are_ratios_to_the_compilers_time_and_their_misses_say_where_it_went():
    quick = {"step": "06", "cache": "edit-quick", "seconds": 9.0, "precompile_seconds": 2.0, "ratio": 4.5}
    full = {
        "step": "06",
        "cache": "edit-full",
        "seconds": 40.0,
        "precompile_seconds": 2.0,
        "ratio": 20.0,
        "in_checks": 38.0,
        "parts": {"the Mojo package compiles (layer_norm.mojo)": 8.0, "compiled Module with a symbolic batch": 28.0},
    }
    targets = _synthetic([("torch-native", "forward", 1.0)], checker=[quick, full])["targets"]
    assert (targets["checker-s06-edit-quick"]["measured"], targets["checker-s06-edit-quick"]["status"]) == (4.5, "met")
    missed = targets["checker-s06-edit-full"]
    assert (missed["measured"], missed["status"], missed["unit"]) == (20.0, "missed", "time ratio")
    assert "took 8.0 s" in missed["why"] and "graph for the compiled Module's check took 28.0 s" in missed["why"]
    assert targets["checker-s06-new-folder"]["status"] == "not measured"
