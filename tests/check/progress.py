"""Where the learner is: each step's last results, hints asked for, backups, and the skeletons to reset to.

Everything lives in `.checker/` at the repository root (git ignores it), never beside the learner's
files. A result is kept with a fingerprint of the files it judged and of the checker itself, so an
unchanged step is not re-run; a missing, stale or corrupt entry is simply ignored.

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

from tests.check import REPO_ROOT
from tests.check.engine import Report, load_checklist

STATE = REPO_ROOT / ".checker"
MANIFEST = Path(__file__).with_name("skeletons.txt")
HINTS = Path(__file__).with_name("hints")


# -- the learner's files ------------------------------------------------------------------------------
def learner_files(step: str) -> list[Path]:
    """The files of the step the learner edits: steps/step_NN.py, or every file of steps/step_06/."""
    skeleton = REPO_ROOT / load_checklist(step).skeleton
    if skeleton.parent.name.startswith("step_"):
        return sorted(p for p in skeleton.parent.iterdir() if p.is_file() and p.suffix in (".py", ".mojo"))
    return [skeleton]


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


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, ensure_ascii=False, indent=1))
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
    data = report.as_json() if isinstance(report, Report) else report
    _write_json(STATE / "results" / f"step_{step}.json", {"fingerprint": fingerprint(step), "report": data})


def state_of(report: dict | None, started: bool) -> tuple[str, int, int]:
    """("not started" | "in progress" | "done" | "not checked", checks passed, checks in all)."""
    if not started:
        return "not started", 0, 0
    if report is None:
        return "not checked", 0, 0
    checks = [c for c in report["checks"] if c["status"] != "skipped"]
    passed = sum(c["status"] == "passed" for c in checks)
    return ("done" if report.get("passed") else "in progress"), passed, len(checks)


# -- hints -----------------------------------------------------------------------------------------
def hint_levels(step: str) -> list[tuple[str, str]]:
    """(title, text) of each level of the step's hints, from the concept to the exact lines."""
    text = (HINTS / f"step_{step}.md").read_text(encoding="utf-8")
    sections = re.split(r"^## (.+)$", text, flags=re.M)[1:]
    return [(title.strip(), body.strip()) for title, body in zip(sections[::2], sections[1::2], strict=True)]


def next_hint(step: str) -> tuple[int, int, str, str]:
    """(level, levels, title, text) of the next hint, remembered in `.checker/hints.json`; the last repeats."""
    levels = hint_levels(step)
    seen = _read_json(STATE / "hints.json")
    seen = seen if isinstance(seen, dict) else {}
    level = min(int(seen.get(step, 0)) + 1 if str(seen.get(step, 0)).isdigit() else 1, len(levels))
    _write_json(STATE / "hints.json", {**seen, step: level})
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
    files = [path for step in _steps() for path in learner_files(step)]
    lines = [f"{blob_id(p.read_bytes())} {p.relative_to(REPO_ROOT)}" for p in files]
    MANIFEST.write_text(
        "# git blob id of each shipped skeleton file: `reset` restores it from git history\n" + "\n".join(lines) + "\n"
    )


def _steps():
    from tests.check.engine import available_steps

    return available_steps()


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
    skeleton = load_checklist(step).skeleton
    folder = str(Path(skeleton).parent) + "/" if Path(skeleton).parent.name.startswith("step_") else skeleton
    return [relative for relative in manifest() if relative == skeleton or relative.startswith(folder)]


def reset(step: str) -> tuple[Path, list[str]]:
    """Saves the learner's files, then puts the shipped skeleton back; returns (backup folder, files reset).

    Every skeleton is fetched before anything is written: if one is missing, nothing changes. Files the
    learner added to a step folder are backed up and left as they are.
    """
    originals = {REPO_ROOT / relative: skeleton_text(relative) for relative in shipped_files(step)}
    folder = backup(step)
    changed = []
    for path, text in originals.items():
        if not path.exists() or path.read_bytes() != text:
            path.write_bytes(text)
            changed.append(str(path.relative_to(REPO_ROOT)))
    return folder, changed


if __name__ == "__main__":
    write_manifest()
    print(f"wrote {MANIFEST.relative_to(REPO_ROOT)}")
