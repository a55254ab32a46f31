"""Where the learner is: each step's last results, hints asked for, backups, and the skeletons to reset to.

Everything lives in `.checker/` at the repository root, never beside the learner's files, in two kinds:

- `.checker/progress.json`, the learner's record, meant to be committed with their work (git does not
  ignore it): per step the check runs so far, when the first and the first passing one happened, and the
  last verdict with a fingerprint of the files it judged (their content and their paths inside the
  repository, nothing of this machine). Sorted keys, one value a line: it diffs and merges like text.
- everything else is this machine's cache (git ignores it): each step's last full report, with a
  fingerprint of the files it judged and of the checker itself, so an unchanged step is not re-run; the
  hints asked for; backups. A missing, stale or corrupt entry is simply ignored.

The two meet in `status` and `watch`: this machine's report wins when there is one; a step never checked
on this machine takes the recorded verdict when its files are the ones it judged (a clone on another
machine), and is checked again otherwise.

The shipped skeletons are not copied anywhere: `skeletons.txt` names each by its git blob id, and
`reset` takes it from the repository's own history (`git cat-file`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.check import REPO_ROOT, steps
from tests.check.engine import Report, available_steps

STATE = REPO_ROOT / ".checker"
PROGRESS = STATE / "progress.json"  # committed with the learner's work (.gitignore lets it through)
MANIFEST = Path(__file__).with_name("skeletons.txt")
HINTS = Path(__file__).with_name("hints")


# -- the learner's files ------------------------------------------------------------------------------
def learner_files(step: str) -> list[Path]:
    """The files of the step the learner edits: its file, or every file of its folder (its record says which)."""
    return steps.step(step).learner_files()


def _digest(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0" + (path.read_bytes() if path.exists() else b"<missing>"))
    return digest.hexdigest()


def checker_fingerprint() -> str:
    """Changes when the checker changes: its code and the step checklists."""
    return _digest(sorted(Path(__file__).parent.rglob("*.py")))


def fingerprint(step: str) -> str:
    return hashlib.sha256((checker_fingerprint() + _digest(learner_files(step))).encode()).hexdigest()


def files_fingerprint(step: str) -> str:
    """The step's files as the progress file records them: content and path inside the repository only."""
    digest = hashlib.sha256()
    for path in learner_files(step):
        content = path.read_bytes() if path.exists() else b"<missing>"
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def not_started(step: str) -> bool:
    """Every file of the step is still the shipped skeleton, byte for byte."""
    shipped = manifest()
    return all(
        (REPO_ROOT / relative).exists() and blob_id((REPO_ROOT / relative).read_bytes()) == shipped[relative]
        for relative in shipped_files(step)
    )


# -- results ---------------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or corrupt: as if never written


def _write_json(path: Path, value, *, for_git: bool = False) -> None:
    """`for_git`: a file a person commits, so sorted keys and one value a line (diffs and merges as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    text = json.dumps(value, ensure_ascii=False, indent=2 if for_git else 1, sort_keys=for_git)
    temporary.write_text(text + "\n" if for_git else text, encoding="utf-8")
    temporary.replace(path)  # a crash mid-write leaves the old entry, never half a file


def cached_report(step: str) -> dict | None:
    """The last JSON report for the step if it judged exactly the files there now, else None."""
    entry = _read_json(STATE / "results" / f"step_{step}.json")
    if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint(step):
        return None
    report = entry.get("report")
    valid = isinstance(report, dict) and isinstance(report.get("checks"), list)
    return report if valid and all(isinstance(c, dict) and "status" in c for c in report["checks"]) else None


def store_report(step: str, report: Report | dict) -> None:
    """Keeps a full run's report (this machine's cache) and counts the run in the progress file."""
    data = report.as_json() if isinstance(report, Report) else report
    _write_json(STATE / "results" / f"step_{step}.json", {"fingerprint": fingerprint(step), "report": data})
    record_run(step, data)


REQUESTED_SKIPS = ("--only", "--quick")  # skips the learner asked for (engine.skip_reason's wording)


def untested_parts(report: dict) -> dict[str, str]:
    """{part: why} for the checks this machine left out (a `skip_if`, e.g. no GPU), not those skipped on
    request: step 06 on a CPU-only machine gives {"GPU": "no GPU here"}. The part is the one-word label
    that starts the checks' names ("GPU: ..."), the reason what their skip message says before its colon."""
    parts = {}
    for check in report.get("checks", []):
        message = str(check.get("message", ""))
        if check.get("status") != "skipped" or message.startswith(REQUESTED_SKIPS):
            continue
        label = str(check.get("name", "")).split(": ", 1)
        part = label[0] if len(label) == 2 and re.fullmatch(r"\w+", label[0]) else "some checks"
        parts.setdefault(part, message.split(": ", 1)[0].strip())
    return parts


def state_of(report: dict | None, started: bool) -> tuple[str, int, int]:
    """("not started" | "in progress" | "done" | "not checked", checks passed, checks in all)."""
    if not started:
        return "not started", 0, 0
    if report is None:
        return "not checked", 0, 0
    checks = [c for c in report["checks"] if c["status"] != "skipped"]
    passed = sum(c["status"] == "passed" for c in checks)
    return ("done" if report.get("passed") else "in progress"), passed, len(checks)


# -- the progress file (committed with the learner's work) ----------------------------------------
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def recorded() -> dict[str, dict]:
    """step -> its entry in the progress file; {} when there is none (or it is not one we can read)."""
    data = _read_json(PROGRESS)
    steps = data.get("steps") if isinstance(data, dict) else None
    return {step: entry for step, entry in steps.items() if isinstance(entry, dict)} if isinstance(steps, dict) else {}


def record_run(step: str, report: dict) -> None:
    """One more check run of the step: its count, its first run and first pass, and the last verdict."""
    data = _read_json(PROGRESS)
    data = data if isinstance(data, dict) and isinstance(data.get("steps"), dict) else {"format": 1, "steps": {}}
    entry = data["steps"].get(step) if isinstance(data["steps"].get(step), dict) else {}
    state, passed, total = state_of(report, True)
    now = _now()
    attempts = entry.get("attempts")
    entry.update(
        attempts=(attempts if isinstance(attempts, int) else 0) + 1,
        first_check=entry.get("first_check") if _parse_time(entry.get("first_check")) else now,
        last_check=now,
        state=state,
        checks_passed=passed,
        checks_total=total,
        files=files_fingerprint(step),
        untested=untested_parts(report),
    )
    if state == "done" and not _parse_time(entry.get("first_pass")):
        entry["first_pass"] = now
    data["steps"][step] = entry
    _write_json(PROGRESS, data, for_git=True)


def time_spent(entry: dict) -> float | None:
    """Seconds from the first check run to the first passing one (or to now), or None before any run."""
    first = _parse_time(entry.get("first_check"))
    if first is None:
        return None
    end = _parse_time(entry.get("first_pass")) or datetime.datetime.now(datetime.timezone.utc)
    return max((end - first).total_seconds(), 0.0)


def recorded_report(step: str) -> dict | None:
    """The progress file's entry for a step this machine has never checked, when the step's files are the
    ones its verdict judged (a clone on another machine); else None: this machine's results, or a check,
    decide."""
    entry = recorded().get(step)
    if not entry or (STATE / "results" / f"step_{step}.json").exists() or entry.get("files") != files_fingerprint(step):
        return None
    if entry.get("state") not in ("done", "in progress"):
        return None
    return entry


# -- hints -----------------------------------------------------------------------------------------
# A level may name the checks it is about, on a line of its own: `<!-- checks: biased; numerically -->`
# (parts of the checks' names, `;` between them). A failing check's hints start at that level.
CHECKS_LINE = re.compile(r"^<!--\s*checks:(.*?)-->\s*$", re.M)


def hint_sections(step: str) -> list[tuple[str, str, list[str]]]:
    """(title, text, checks it is about) of each level of the step's hints, from the concept to the lines."""
    text = (HINTS / f"step_{step}.md").read_text(encoding="utf-8")
    sections = re.split(r"^## (.+)$", text, flags=re.M)[1:]
    found = []
    for title, body in zip(sections[::2], sections[1::2], strict=True):
        checks = [part.strip() for line in CHECKS_LINE.findall(body) for part in line.split(";") if part.strip()]
        found.append((title.strip(), CHECKS_LINE.sub("", body).strip(), checks))
    return found


def hint_levels(step: str) -> list[tuple[str, str]]:
    """(title, text) of each level of the step's hints, from the concept to the exact lines."""
    return [(title, text) for title, text, _ in hint_sections(step)]


def hint_level_for(step: str, check: str | None) -> int:
    """The level (from 1) whose hint is about `check`: the first level naming a part of its name, else 1."""
    for level, (_, _, parts) in enumerate(hint_sections(step), 1):
        if check and any(part.lower() in check.lower() for part in parts):
            return level
    return 1


def first_failure(report: dict | None) -> str | None:
    """The name of the first check that failed in a report (the one the others may follow from)."""
    checks = report.get("checks", []) if isinstance(report, dict) else []
    return next((c.get("name") for c in checks if isinstance(c, dict) and c.get("status") == "failed"), None)


def last_report(step: str) -> dict | None:
    """The step's last stored report, whether or not its files changed since (what the learner last saw)."""
    entry = _read_json(STATE / "results" / f"step_{step}.json")
    report = entry.get("report") if isinstance(entry, dict) else None
    return report if isinstance(report, dict) else None


def next_hint(step: str, failing: str | None = None) -> tuple[int, int, str, str]:
    """(level, levels, title, text) of the next hint, remembered in `.checker/hints.json`; the last repeats.

    The ladder starts at the level about the failing check, and climbs while that check is the one failing;
    another failing check starts its own ladder.
    """
    levels = hint_levels(step)
    seen = _read_json(STATE / "hints.json")
    seen = seen if isinstance(seen, dict) else {}
    last = seen.get(step)
    last = {"level": last, "check": failing} if isinstance(last, int) else last  # the older format: a level
    if isinstance(last, dict) and isinstance(last.get("level"), int) and last.get("check") == failing:
        level = min(last["level"] + 1, len(levels))
    else:
        level = hint_level_for(step, failing)
    _write_json(STATE / "hints.json", {**seen, step: {"level": level, "check": failing}})
    return level, len(levels), *levels[level - 1]


# -- reset -----------------------------------------------------------------------------------------
def blob_id(data: bytes) -> str:
    """Git's id of a file's content: what `git hash-object` prints."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def manifest() -> dict[str, str]:
    """path relative to the repository -> git blob id of the shipped skeleton."""
    lines = MANIFEST.read_text().splitlines()
    return dict(reversed(line.split()) for line in lines if line.strip() and not line.startswith("#"))


def write_manifest() -> None:
    """For maintainers, after editing a skeleton: `python -m tests.check.progress`."""
    files = [path for step in available_steps() for path in learner_files(step)]
    lines = [f"{blob_id(p.read_bytes())} {p.relative_to(REPO_ROOT)}" for p in files]
    MANIFEST.write_text(
        "# git blob id of each shipped skeleton file: `reset` restores it from git history\n" + "\n".join(lines) + "\n"
    )


def skeleton_text(relative: str) -> bytes:
    """The shipped skeleton of a file, from the repository's git objects."""
    blob = manifest().get(relative)
    if blob is None:
        raise LookupError(f"{relative} has no shipped skeleton")
    try:
        return subprocess.run(
            ["git", "cat-file", "blob", blob], cwd=REPO_ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        raise LookupError(
            f"the original {relative} is not in this repository's git history (a download without "
            "git, or a shallow clone?); take it from the project's repository instead"
        ) from None


def backup(step: str) -> Path:
    """Copies the step's files to `.checker/backups/<date>-step_NN/`; returns that folder."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = STATE / "backups" / f"{stamp}-step_{step}"
    for path in learner_files(step):
        target = folder / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return folder


def shipped_files(step: str) -> list[str]:
    """The step's files as shipped (relative paths), whether or not the learner still has them."""
    record = steps.step(step)
    return [relative for relative in manifest() if relative == record.learner or relative.startswith(record.learner)]


def reset(step: str) -> tuple[Path, list[str]]:
    """Saves the learner's files, then puts the shipped skeleton back; returns (backup folder, files reset).

    Every skeleton is fetched before anything is written: if one is missing, nothing changes. Files the
    learner added to a step folder are backed up and left as they are.
    """
    return reset_steps([step])[step]


def reset_steps(steps: list[str]) -> dict[str, tuple[Path, list[str]]]:
    """`reset` of several steps: every skeleton fetched first (one missing: nothing changes), then each step's
    files saved and its skeleton put back. step -> (backup folder, files reset)."""
    originals = {step: {REPO_ROOT / rel: skeleton_text(rel) for rel in shipped_files(step)} for step in steps}
    done = {}
    for step, files in originals.items():
        folder = backup(step)
        changed = []
        for path, text in files.items():
            if not path.exists() or path.read_bytes() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text)
                changed.append(str(path.relative_to(REPO_ROOT)))
        done[step] = folder, changed
    return done


def backups(step: str) -> list[Path]:
    """The step's backups, oldest first (their names start with the time they were made)."""
    return sorted((STATE / "backups").glob(f"*-step_{step}"))


def restore(step: str) -> tuple[Path, Path, list[str]]:
    """Puts the step's last backup back, after backing up the files there now (so a restore can be undone
    by another); returns (the backup restored, the backup of the files replaced, the files written)."""
    found = backups(step)
    if not found:
        raise LookupError(f"step {step} has no backup in {STATE.relative_to(REPO_ROOT)}/backups/")
    latest = found[-1]
    saved = backup(step)
    written = []
    for source in sorted(p for p in latest.rglob("*") if p.is_file()):
        relative = source.relative_to(latest)
        target = REPO_ROOT / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        written.append(relative.as_posix())
    return latest, saved, written


if __name__ == "__main__":
    write_manifest()
    print(f"wrote {MANIFEST.relative_to(REPO_ROOT)}")
