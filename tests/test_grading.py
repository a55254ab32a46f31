"""`grade`: a class's submissions, right, wrong and hostile, checked side by side into one gradebook; and the
JUnit XML every reporting command writes."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT, load_checklist
from tests.check.formats import write_junit
from tests.check.grade import UsageError, find_submissions, fingerprint, grade_parser, report_path

SOLUTION = (REPO_ROOT / "solutions" / "solution_01.py").read_text()
FORWARD = "    # ANCHOR: forward\n"
SCALE = 0.5  # the step-01 limit of 5 CPU seconds per call, halved: the hang costs 2.5 s
STEP_01_CHECKS = 1 + len(load_checklist("01").checks)  # the import, then the checklist


def before_the_forward(code: str) -> str:
    """The solution with `code` run first in layernorm_forward."""
    assert FORWARD in SOLUTION
    return SOLUTION.replace(FORWARD, code + FORWARD)


def with_mistake(line: str, wrong: str) -> str:
    """The solution with one line of it written wrong."""
    assert line in SOLUTION
    return SOLUTION.replace(line, wrong)


CLASS = {
    "correct.py": SOLUTION,
    "unbiased.py": with_mistake(
        "var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
        "var = ((x - mean) ** 2).sum(axis=1, keepdims=True) / (x.shape[1] - 1)",
    ),
    "hangs.py": before_the_forward("    while True:\n        pass\n"),
    "exits.py": before_the_forward("    import sys\n    sys.exit(0)\n"),
    "floods.py": before_the_forward("    print('x' * 5_000_000)\n    return x.copy(), None\n"),
}


def checker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.check", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def grade(subs: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = checker("grade", "01", str(subs), "--out", str(out), "--jobs", "2", "--timeout-scale", str(SCALE), *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, time.monotonic() - started


def gradebook(out: Path) -> dict[str, dict]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8") as file:
        return {row["submission"]: row for row in csv.DictReader(file)}


def checked_and_cached(result: subprocess.CompletedProcess) -> tuple[int, int]:
    match = re.search(r"Checked (\d+), (\d+) cached", result.stdout)
    assert match, result.stdout
    return int(match.group(1)), int(match.group(2))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class graded once, two at a time: (submissions folder, output folder, the run, its seconds)."""
    root = tmp_path_factory.mktemp("class")
    subs = root / "subs"
    subs.mkdir()
    for name, source in CLASS.items():
        (subs / name).write_text(source)
    result, seconds = grade(subs, root / "grades")
    return subs, root / "grades", result, seconds


# -- the gradebook ---------------------------------------------------------------------------------
@pytest.mark.slow  # waits for a time limit on purpose
def test_every_row_of_the_gradebook_is_right(graded):
    _, out, result, _ = graded
    rows = gradebook(out)
    assert sorted(rows) == sorted(CLASS)
    assert all(int(row["checks_total"]) == STEP_01_CHECKS for row in rows.values())
    correct = rows.pop("correct.py")
    assert (correct["passed"], correct["checks_passed"], correct["first_failure"]) == ("1", str(STEP_01_CHECKS), "")
    hints = {
        "unbiased.py": "variance looks unbiased",
        "hangs.py": "no answer within the time limit",
        "exits.py": "called sys.exit()",
        "floods.py": "differs from the float64 oracle",
    }
    for name, row in rows.items():
        assert row["passed"] == "0" and int(row["checks_passed"]) < STEP_01_CHECKS, row
        assert row["first_failure"].startswith("worked example 1"), row
        assert hints[name] in row["hint"].lower(), row
        assert float(row["seconds"]) > 0
    assert "1 of 5 pass every check" in result.stdout


@pytest.mark.slow
def test_a_hang_costs_one_time_limit_and_only_its_own_row(graded):
    _, out, _, seconds = graded
    report = json.loads((out / "reports" / "hangs.json").read_text())
    limits = [c for c in report["checks"] if "time limit" in c["message"]]
    assert len(limits) == 1  # the later checks are not run: it would hang again
    assert all(c["message"].startswith("Not run:") for c in report["checks"][2:] if c["status"] == "failed")
    # One limit of 2.5 CPU seconds, not one per check (13 checks: over 30 s of spinning, one after another).
    assert float(gradebook(out)["hangs.py"]["seconds"]) < 20
    assert seconds < 60


@pytest.mark.slow
def test_gradebook_summary_and_reports_agree(graded):
    _, out, _, _ = graded
    rows = gradebook(out)
    failed_per_check: dict[str, int] = {}
    for name, row in rows.items():
        report = json.loads((out / "reports" / name.replace(".py", ".json")).read_text())
        assert set(report) == {"step", "title", "file", "passed", "notes", "checks"}  # the shape --json prints
        judged = [c for c in report["checks"] if c["status"] != "skipped"]
        failed = [c for c in judged if c["status"] == "failed"]
        assert row["passed"] == str(int(report["passed"]))
        assert row["checks_passed"] == str(len(judged) - len(failed)) and row["checks_total"] == str(len(judged))
        assert row["first_failure"] == (failed[0]["name"] if failed else "")
        assert len(report["checks"]) == STEP_01_CHECKS
        for check in report["checks"][1:]:  # the first imports the file, and is named after it
            failed_per_check[check["name"]] = failed_per_check.get(check["name"], 0) + (check["status"] == "failed")
    summary = (out / "summary.md").read_text()
    assert "5 submissions; 1 pass every check (20%)." in summary
    table = [line.split(" | ") for line in summary.splitlines() if line.startswith("| ") and "pass rate" not in line]
    shown = {cells[0].removeprefix("| "): int(cells[1]) for cells in table}
    assert shown.pop("the file imports") == 0
    assert shown == failed_per_check
    assert list(shown.values()) == sorted(shown.values(), reverse=True)  # the class's commonest mistakes first


@pytest.mark.slow
def test_junit_has_a_testsuite_per_submission_and_a_testcase_per_check(graded):
    _, out, _, _ = graded
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert sorted(suite.get("name") for suite in suites) == sorted(CLASS)
    by_name = {suite.get("name"): suite for suite in suites}
    for suite in suites:
        cases = suite.findall("testcase")
        assert len(cases) == STEP_01_CHECKS and {case.get("classname") for case in cases} == {"step_01"}
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    assert not by_name["correct.py"].findall("testcase/failure")
    variance = by_name["unbiased.py"].find("testcase[@name='variance is the biased one (divides by D)']/failure")
    assert "variance looks unbiased" in variance.get("message")
    hang = by_name["hangs.py"].findall("testcase/failure")[0]
    assert "no answer within the time limit" in hang.get("message").lower()


@pytest.mark.slow
def test_a_second_run_regrades_only_what_changed_and_force_regrades_all(graded, tmp_path):
    subs, out, _, _ = graded
    before = (out / "gradebook.csv").read_text()
    again, seconds = grade(subs, out)
    assert checked_and_cached(again) == (0, len(CLASS))
    assert (out / "gradebook.csv").read_text() == before and seconds < 20
    # Copies from here on: the other tests read the class as first graded.
    edited, copy = shutil.copytree(subs, tmp_path / "subs"), shutil.copytree(out, tmp_path / "grades")
    (edited / "unbiased.py").write_text(SOLUTION)  # the student fixed it
    fixed, _ = grade(edited, copy)
    assert checked_and_cached(fixed) == (1, len(CLASS) - 1)  # the others moved, unchanged: not checked again
    assert json.loads((copy / "reports" / "exits.json").read_text())["file"] == str((edited / "exits.py").resolve())
    assert gradebook(copy)["unbiased.py"]["passed"] == "1"
    forced, _ = grade(edited, copy, "--force")
    assert checked_and_cached(forced) == (len(CLASS), 0)


# -- submissions and usage -----------------------------------------------------------------------------
def test_submissions_are_named_by_their_path_below_the_shared_folder(tmp_path):
    for student in ("alice", "bob"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "step_01.py").write_text(SOLUTION)
    found = find_submissions(load_checklist("01"), [tmp_path / "alice" / "step_01.py", tmp_path / "bob"])
    assert [s.name for s in found] == ["alice/step_01.py", "bob/step_01.py"]
    assert report_path(tmp_path / "out", found[1]) == tmp_path / "out" / "reports" / "bob" / "step_01.json"


def test_a_folder_step_grades_folders_and_fingerprints_every_file(tmp_path):
    checklist = load_checklist("06")
    for student in ("alice", "bob"):
        folder = tmp_path / student
        folder.mkdir()
        for file in (REPO_ROOT / "steps" / "step_06").iterdir():
            (folder / file.name).write_bytes(file.read_bytes())
    found = find_submissions(checklist, [tmp_path])  # a folder of submission folders
    assert [(s.name, s.target.name) for s in found] == [("alice", "step_06.py"), ("bob", "step_06.py")]
    options = grade_parser(checklist.add_arguments).parse_args(["06", str(tmp_path), "--out", "x"])
    key = fingerprint(found[0], options)
    (tmp_path / "alice" / "layer_norm.mojo").write_text("# changed\n")
    assert fingerprint(found[0], options) != key
    with pytest.raises(UsageError, match="grades folders like steps/step_06/"):
        find_submissions(checklist, [tmp_path / "alice" / "step_06.py"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["grade", "99", "x.py", "--out", "g"], "no step 99"),
        (["grade", "01", "no/such/file.py", "--out", "g"], "does not exist"),
        (["grade", "01", "solutions/solution_01.py"], "--out"),
        (["grade", "01", "tests/zoo", "--out", "g"], "holds no .py file"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = checker(*args)
    assert result.returncode == 2
    assert message in result.stderr


# -- JUnit from the other commands ---------------------------------------------------------------------
def test_check_writes_junit_with_skipped_checks_and_hints(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(SOLUTION)
    bad.write_text(CLASS["unbiased.py"])
    junit = tmp_path / "out" / "junit.xml"
    result = checker("01", "--file", str(good), str(bad), "--only", "variance", "--junit", str(junit))
    assert result.returncode == 1
    good_suite, bad_suite = ET.parse(junit).getroot().findall("testsuite")
    assert good_suite.get("name").endswith("good.py") and bad_suite.get("name").endswith("bad.py")
    skipped = good_suite.findall("testcase/skipped")
    assert skipped and len(skipped) == int(good_suite.get("skipped"))
    assert all("--only 'variance' selects other checks" == s.get("message") for s in skipped)
    [failure] = bad_suite.findall("testcase/failure")
    assert "variance looks unbiased" in failure.get("message") and failure.text == failure.get("message")


def test_junit_stays_valid_xml_whatever_a_hint_quotes(tmp_path):
    report = {"step": "01", "title": "t", "file": "f.py", "passed": False, "notes": ["printed \x1b[31m"]}
    report["checks"] = [{"name": "a \x00 check", "status": "failed", "message": 'got \x07 <&> "quoted"'}]
    write_junit(tmp_path / "junit.xml", [report])
    failure = ET.parse(tmp_path / "junit.xml").find("testsuite/testcase/failure")
    assert failure.get("message") == 'got \ufffd <&> "quoted"'
