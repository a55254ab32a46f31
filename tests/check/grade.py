"""Grade a class: every submission of one step checked in a sandbox of its own, N at a time.

python -m tests.check grade 01 subs/*.py --out grades [--jobs 4] [--force] [--junit PATH]

A submission is a file with the step's interface, or for a folder step (06) a folder like
`steps/step_06/`; a folder given for a file step stands for the `.py` files in it. Written to DIR:

    gradebook.csv        a row per submission: passed, checks passed of checks judged, first failure, seconds
    summary.md           the pass rate of each check, most failed first: the mistakes the class makes most
    reports/NAME.json    each submission's report, as `--json` prints it
    junit.xml            JUnit XML, one testsuite per submission (--junit PATH writes it elsewhere)
    fingerprints.json    what each report judged: a submission whose files and checker did not change is
                         not graded again on the next run (--force re-grades every one)

Every learner file runs in its own child process (see `sandbox.py`): a hang, a crash, a flood of output
or a runaway allocation costs that submission its time limit and its row, nothing else. Each runs with a
HOME, TMPDIR and working directory of its own, removed afterwards, so what one writes there neither
reaches the grader's nor the next submission's. The exit code is 0 whenever grading ran, whatever the
grades; 2 for a usage error; 130 when interrupted (Ctrl-C), keeping what was graded.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tests.check import progress, steps
from tests.check.cli import INTERRUPTED, USAGE_ERROR, add_run_options, step_id
from tests.check.engine import SCALE_ENV, Checklist, display_path, load_checklist, run_checklist
from tests.check.formats import table, write_junit

GRADEBOOK_COLUMNS = ["submission", "passed", "checks_passed", "checks_total", "first_failure", "hint", "seconds"]
GRADING_ONLY = {"submissions", "out", "jobs", "force", "junit"}  # options that do not change a report


class UsageError(Exception):
    pass


@dataclass
class Submission:
    name: str  # as the gradebook shows it: its path below the folder all submissions share
    target: Path  # the file the checker runs: the submission, or a folder step's Python file
    files: list[Path]  # what its fingerprint covers


# -- the command line --------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of parallel checks such as 4, got {text!r}")
    return int(text)


def grade_parser(add_step_arguments=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check grade",
        description="Check every submission of a step, N at a time, and write a gradebook "
        "(gradebook.csv, summary.md, reports/, junit.xml) to DIR. Exits 0 whatever the grades.",
    )
    parser.add_argument("step", type=step_id, help="step number, e.g. 01")
    parser.add_argument(
        "submissions",
        nargs="+",
        type=Path,
        metavar="SUBMISSION",
        help="files with the step's interface (step 06: folders like steps/step_06/); a folder of them",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the gradebook is written")
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="submissions checked at once (default: the number of cores)",
    )
    parser.add_argument("--force", action="store_true", help="re-grade submissions that did not change")
    parser.add_argument("--junit", type=Path, metavar="PATH", help="where the JUnit XML goes (default DIR/junit.xml)")
    # The checker's own options, as `python -m tests.check NN` takes them.
    add_run_options(parser)
    if add_step_arguments:
        add_step_arguments(parser)
    return parser


def parse_arguments(argv: list[str]) -> tuple[Checklist, argparse.Namespace]:
    """Parsed once for the step alone, then with that step's own options (e.g. --device), as `check` does."""
    known, _ = grade_parser().parse_known_args(argv)
    checklist = load_checklist(known.step)
    return checklist, grade_parser(checklist.add_arguments).parse_args(argv)


# -- submissions -------------------------------------------------------------------------------------
def step_folder_file(checklist: Checklist) -> str | None:
    """For a folder step, the name of the Python file inside the folder (`step_06.py`); else None."""
    return steps.step(checklist.step).glue or None


def find_submissions(checklist: Checklist, paths: list[Path]) -> list[Submission]:
    glue = step_folder_file(checklist)
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        if glue is None and path.is_file():
            found.append(path)
        elif glue is None:  # a folder of submissions
            found += _inside(path, lambda p: p.is_file() and p.suffix == ".py", "no .py file")
        elif path.is_file():
            raise UsageError(
                f"step {checklist.step} grades folders like steps/step_{checklist.step}/; {path} is a file"
            )
        elif (path / glue).is_file():
            found.append(path)
        else:  # a folder of submission folders
            found += _inside(path, lambda p: (p / glue).is_file(), f"no folder holding {glue}")
    unique = list(dict.fromkeys(path.resolve() for path in found))
    common = Path(os.path.commonpath([path.parent for path in unique]))
    submissions = []
    for path in unique:
        name = path.relative_to(common).as_posix()
        if glue is None:
            submissions.append(Submission(name, path, [path]))
        else:
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".py", ".mojo"))
            submissions.append(Submission(name, path / glue, files))
    return submissions


def _inside(folder: Path, is_submission, missing: str) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if is_submission(p))
    if not found:
        raise UsageError(f"{folder} holds {missing}: nothing to grade")
    return found


def fingerprint(submission: Submission, options) -> str:
    """Changes when the submission's files, the checker, or an option that changes the report changes; not when
    the submissions move (a class downloaded again into another folder)."""
    digest = hashlib.sha256(progress.checker_fingerprint().encode())
    relevant = {key: value for key, value in vars(options).items() if key not in GRADING_ONLY}
    digest.update(json.dumps([relevant, os.environ.get(SCALE_ENV)], sort_keys=True, default=str).encode())
    for path in submission.files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# -- results -----------------------------------------------------------------------------------------
def report_path(out: Path, submission: Submission) -> Path:
    return out / "reports" / f"{submission.name.removesuffix('.py')}.json"


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    temporary.replace(path)  # an interrupted run leaves the old file, never half of one


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cached(out: Path, submission: Submission, key: str, known: dict) -> tuple[dict, float] | None:
    """(report, seconds) from the last run in `out` if it judged exactly these files, else None."""
    entry = known.get(submission.name)
    if not isinstance(entry, dict) or entry.get("fingerprint") != key:
        return None
    report = _read_json(report_path(out, submission))
    if not isinstance(report, dict) or not isinstance(report.get("checks"), list):
        return None
    return {**report, "file": display_path(submission.target)}, float(entry.get("seconds", 0.0))


def grade_one(checklist: Checklist, submission: Submission, options, cancel: threading.Event) -> tuple[dict, float]:
    started = time.monotonic()
    report = run_checklist(checklist, submission.target, options, cancel=cancel, private=True)
    return report.as_json(), round(time.monotonic() - started, 1)


def row(submission: Submission, report: dict, seconds: float) -> dict:
    judged = [c for c in report["checks"] if c["status"] != "skipped"]
    failure = next((c for c in judged if c["status"] == "failed"), None)
    return {
        "submission": submission.name,
        "passed": int(bool(report["passed"])),
        "checks_passed": sum(c["status"] == "passed" for c in judged),
        "checks_total": len(judged),
        "first_failure": failure["name"] if failure else "",
        "hint": failure["message"] if failure else "",
        "seconds": seconds,
    }


def write_gradebook(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=GRADEBOOK_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def summary(checklist: Checklist, reports: list[dict], rows: list[dict]) -> str:
    """Markdown: how many pass, then each check's pass rate, the most failed first."""
    order, passed, failed = {}, Counter(), Counter()
    for report in reports:
        for index, check in enumerate(report["checks"]):
            # The first check of every report imports the file, and is named after it ("alice.py imports").
            label = "the file imports" if index == 0 else check["name"]
            order.setdefault(label, len(order))
            passed[label] += check["status"] == "passed"
            failed[label] += check["status"] == "failed"
    judged = [label for label in order if passed[label] + failed[label]]
    by_failures = sorted(judged, key=lambda label: (-failed[label], order[label]))
    rate = [
        [label, failed[label], passed[label], f"{passed[label] / (passed[label] + failed[label]):.0%}"]
        for label in by_failures
    ]
    everything = sum(r["passed"] for r in rows)
    parts = [
        f"# Step {checklist.step}: {checklist.title}: grades",
        f"{len(rows)} submission{'s' * (len(rows) != 1)}; {everything} pass every check"
        + (f" ({everything / len(rows):.0%})." if rows else "."),
        "## Checks, most failed first",
        "A check that could not run (the file does not import, an earlier check hung) counts as failed.",
        table(["check", "failed", "passed", "pass rate"], rate),
    ]
    return "\n\n".join(parts) + "\n"


# -- the run -----------------------------------------------------------------------------------------
def progress_line(graded: dict) -> str:
    mark = "✅" if graded["passed"] else "❌"
    first = f"; first failure: {graded['first_failure']}" if graded["first_failure"] else ""
    checks = f"{graded['checks_passed']}/{graded['checks_total']} checks"
    return f"{mark} {graded['submission']}: {checks}{first} ({graded['seconds']:.1f} s)"


def main(argv: list[str]) -> int:
    checklist, options = parse_arguments(argv)
    try:
        submissions = find_submissions(checklist, options.submissions)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    out = options.out
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file; name a folder for the gradebook", file=sys.stderr)
        return USAGE_ERROR
    out.mkdir(parents=True, exist_ok=True)
    known_path = out / "fingerprints.json"
    known = _read_json(known_path)
    known = known if isinstance(known, dict) else {}
    results: dict[str, tuple[dict, float]] = {}
    to_grade = []
    for submission in submissions:
        key = fingerprint(submission, options)
        hit = None if options.force else cached(out, submission, key, known)
        if hit:
            results[submission.name] = hit
            _write_json(report_path(out, submission), hit[0])  # its "file" is where the submission is now
        else:
            to_grade.append((submission, key))
    unchanged = len(results)
    print(
        f"Grading step {checklist.step} ({checklist.title}): {len(submissions)} submissions, {len(to_grade)} to check "
        f"({unchanged} unchanged since the last run), {min(options.jobs, max(len(to_grade), 1))} at a time",
        flush=True,
    )
    cancel = threading.Event()  # Ctrl-C: every running check stops within a poll
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {pool.submit(grade_one, checklist, s, options, cancel): (s, key) for s, key in to_grade}
        try:
            for future in as_completed(futures):
                submission, key = futures[future]
                report, seconds = results[submission.name] = future.result()
                # Saved as each finishes: an interrupted run keeps what it graded.
                _write_json(report_path(out, submission), report)
                known[submission.name] = {"fingerprint": key, "seconds": seconds}
                _write_json(known_path, known)
                print(progress_line(row(submission, report, seconds)), flush=True)
        except BaseException as stop:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            if not isinstance(stop, KeyboardInterrupt):
                raise
            print(f"\nInterrupted: what was graded is kept in {out}; run the same command to go on.", file=sys.stderr)
            return INTERRUPTED
    rows = [row(s, *results[s.name]) for s in submissions]
    reports = [results[s.name][0] for s in submissions]
    write_gradebook(out / "gradebook.csv", rows)
    (out / "summary.md").write_text(summary(checklist, reports, rows), encoding="utf-8")
    junit = options.junit or out / "junit.xml"
    write_junit(junit, reports, names=[s.name for s in submissions], seconds=[results[s.name][1] for s in submissions])
    everything = sum(r["passed"] for r in rows)
    print(
        f"\n{everything} of {len(rows)} pass every check. Checked {len(to_grade)}, {unchanged} cached "
        f"(unchanged; --force re-grades them).\nWrote {out / 'gradebook.csv'}, {out / 'summary.md'}, "
        f"{out / 'reports'}/ and {junit}"
    )
    return 0
