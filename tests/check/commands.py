"""The learner's commands besides checking a step: `status`, `hint`, `reset`, `restore` (`watch` has its own module).

python -m tests.check                 the course at a glance (same as `status`)
python -m tests.check status [--refresh] [--markdown | --json]
python -m tests.check status --started   the numbers of the steps you have started, one a line (runs nothing)
python -m tests.check hint 03         the next hint for step 03, one level at a time
python -m tests.check reset 03 [--yes]   your files saved to .checker/backups/, the skeleton put back
python -m tests.check reset --all [--yes]   the same for every step you have started
python -m tests.check restore 03      your last backup of step 03 back (the files there now saved first)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from tests.check import progress
from tests.check.cli import parse_check_arguments, step_id
from tests.check.engine import REPO_ROOT, available_steps, load_checklist, run_checklist
from tests.check.formats import markdown_report, table


@dataclass
class StepStatus:
    """Where the learner is on one step: its state, from this machine's results or the progress file."""

    step: str
    title: str
    file: str
    state: str  # "not started", "in progress", "done", or "not checked" (changed since; watch does not re-check)
    passed: int = 0
    total: int = 0
    attempts: int = 0
    seconds: float | None = None  # first check to first pass, or to now
    untested: dict[str, str] = field(default_factory=dict)  # {part: why}, e.g. {"GPU": "no GPU here"}
    source: str = ""  # "this machine", "progress file" (recorded on another machine), "checked now"
    report: dict | None = None  # the full report, when this machine has it

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def label(self) -> str:
        if self.state == "done":
            return done_label(self.untested)
        if self.state == "not checked":
            return "changed since the last check"
        return self.state

    def as_json(self) -> dict:
        return {
            "step": self.step,
            "title": self.title,
            "file": self.file,
            "state": self.state,
            "label": self.label,
            "checks_passed": self.passed,
            "checks_total": self.total,
            "attempts": self.attempts,
            "seconds_spent": None if self.seconds is None else round(self.seconds),
            "untested": self.untested,
            "source": self.source,
        }


def done_label(untested: dict[str, str]) -> str:
    """A passing step's state: done, and what this machine left unchecked (`untested`); step 06 without a GPU
    reads "CPU part done ✅; GPU part not checked (no GPU here)"."""
    if not untested:
        return "done ✅"
    if set(untested) == {"GPU"}:
        return f"CPU part done ✅; GPU part not checked ({untested['GPU']})"
    return "done ✅; not checked here: " + ", ".join(f"{part} ({why})" for part, why in untested.items())


def step_status(step: str, *, refresh: bool = False, recheck: bool = True, on_start=None) -> StepStatus:
    """The step's state. A started step whose files changed since its last results is checked again when
    `recheck` (`on_start(step, why)` is told first), else reported "not checked"."""
    checklist = load_checklist(step)
    where = checklist.skeleton.rsplit("/", 1)[0] + "/" if checklist.skeleton.count("/") > 1 else checklist.skeleton
    status = StepStatus(step, checklist.title, where, "not started")
    if not progress.not_started(step):
        report = None if refresh else progress.cached_report(step)
        summary = None if refresh or report else progress.recorded_report(step)
        status.source = "this machine" if report else "progress file" if summary else ""
        if report is None and summary is None and recheck:
            if on_start:
                had = progress.last_report(step) is not None
                why = "its files or the checker changed since its last check" if had else "not checked here yet"
                on_start(step, "--refresh" if refresh else why)
            checklist, options = parse_check_arguments([step])
            report = run_checklist(checklist, REPO_ROOT / checklist.skeleton, options).as_json()
            progress.store_report(step, report)
            status.source = "checked now"
        if report is not None:
            status.state, status.passed, status.total = progress.state_of(report, True)
            status.untested, status.report = progress.untested_parts(report), report
        elif summary is not None:
            status.state, status.passed, status.total = summary["state"], *_counts(summary)
            status.untested = summary.get("untested") if isinstance(summary.get("untested"), dict) else {}
        else:
            status.state = "not checked"
    entry = progress.recorded().get(step, {})
    status.attempts = entry.get("attempts") if isinstance(entry.get("attempts"), int) else 0
    status.seconds = progress.time_spent(entry)
    return status


def _counts(entry: dict) -> tuple[int, int]:
    passed, total = entry.get("checks_passed"), entry.get("checks_total")
    return (passed, total) if isinstance(passed, int) and isinstance(total, int) else (0, 0)


def course_status(refresh: bool = False, recheck: bool = True, on_start=None) -> list[StepStatus]:
    return [step_status(step, refresh=refresh, recheck=recheck, on_start=on_start) for step in available_steps()]


def first_step_not_passing() -> str:
    """The first step whose last results (for its files as they are now) do not all pass; no check is run."""
    for step in available_steps():
        report = progress.cached_report(step) or progress.recorded_report(step)
        if report is None or not (report.get("passed") or report.get("state") == "done"):
            return step
    return available_steps()[-1]


def duration(seconds: float | None) -> str:
    """A time spent as a person reads it: "under a minute", "12 min", "2 h 05 min", "3 d 4 h"."""
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 24 else f"{hours // 24} d {hours % 24} h"


def rows_of(statuses: list[StepStatus]) -> list[list[str]]:
    return [
        [
            s.step,
            s.title,
            s.file,
            f"{s.passed}/{s.total}" if s.total else "",
            str(s.attempts) if s.attempts else "",
            duration(s.seconds),
            s.label,
        ]
        for s in statuses
    ]


HEADER = ["step", "title", "your file", "checks", "attempts", "time spent", "state"]


def next_line(statuses: list[StepStatus], markdown: bool = False) -> str:
    nxt = next((s.step for s in statuses if not s.done), None)
    if nxt is None:
        untested = [f"step {s.step}: {s.label.split('; ', 1)[1]}" for s in statuses if s.untested]
        return "All done ✅" + (f" ({'; '.join(untested)})" if untested else "")
    command = f"`make s{nxt}` (or `make watch`)" if markdown else f"make s{nxt} (or make watch)"
    return f"Next: step {nxt}: {command}" + ("" if markdown else f"; stuck? make hint NN={nxt}")


def step_command_parser(command: str, description: str, default: str = "") -> argparse.ArgumentParser:
    """The parser of `python -m tests.check COMMAND [NN]`: a command about one step, which may be left out."""
    parser = argparse.ArgumentParser(prog=f"python -m tests.check {command}", description=description)
    more = f" (default: {default})" if default else ""
    parser.add_argument("step", nargs="?", type=step_id, help=f"step number, e.g. 03{more}")
    return parser


def status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.check status",
        description="Where you are in the course: per step its state, checks passed, check runs and time spent "
        "(from the first check to the first pass). A started step whose files changed since its last check "
        "is checked again, and you are told so.",
    )
    parser.add_argument("--refresh", action="store_true", help="re-run the checks of every started step")
    parser.add_argument(
        "--started", action="store_true", help="only print the numbers of the steps you have started (for scripts)"
    )
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument(
        "--markdown", action="store_true", help="print as Markdown, with the ✅/❌ table of each started step (CI)"
    )
    formats.add_argument("--json", action="store_true", help="print as JSON: {'steps': [...], 'next': NN or null}")
    options = parser.parse_args(argv)
    if options.started:
        for step in available_steps():
            if not progress.not_started(step):
                print(step)
        return 0

    def checking(step: str, why: str) -> None:
        sys.stdout.flush()  # a notice on stderr never lands inside a line of the table
        print(f"(checking step {step}: {why}…)", file=sys.stderr, flush=True)

    statuses = course_status(options.refresh, on_start=checking)
    if options.json:
        nxt = next((s.step for s in statuses if not s.done), None)
        print(json.dumps({"steps": [s.as_json() for s in statuses], "next": nxt}, ensure_ascii=False, indent=2))
        return 0
    if options.markdown:
        print("## Your progress\n")
        print(table(HEADER, rows_of(statuses)) + "\n")
        print(next_line(statuses, markdown=True) + "\n")
        print("\n".join(markdown_report(s.report) for s in statuses if s.report), end="")
        return 0
    rows = [HEADER, *rows_of(statuses)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    for row in rows:
        print("  ".join(f"{cell:<{width}}" for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    print("\n" + next_line(statuses))
    return 0


def hint(argv: list[str]) -> int:
    options = step_command_parser(
        "hint", "The next hint for a step, starting at the one about the check that fails.", "the step you are on"
    ).parse_args(argv)
    step = options.step or first_step_not_passing()
    print(hint_text(step, progress.first_failure(progress.last_report(step))))
    return 0


def hint_text(step: str, failing: str | None = None, *, in_watch: bool = False) -> str:
    """The next hint for the step; its ladder starts at the level about `failing`, the first failed check."""
    level, levels, title, text = progress.next_hint(step, failing)
    about = f"(about the first check that failed: {failing})\n" if failing else ""
    if level < levels:
        again = "press h" if in_watch else f"`make hint NN={step}` again"
        after = f"({again} for hint {level + 1} of {levels})"
    else:
        compare = "press c" if in_watch else f"make compare NN={step}"
        after = f"That was the last hint. The solution, beside your blocks: {compare}"
    return f"Hint {level} of {levels} for step {step}: {title}\n{about}\n{text}\n\n{after}"


def _confirm(command: str, question: str) -> int | None:
    """None to go on; an exit code when the learner did not say yes (or could not be asked)."""
    if not sys.stdin.isatty():
        print(
            f"error: {command} asks for confirmation on a terminal; add --yes to go on without asking", file=sys.stderr
        )
        return 2
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        print("Nothing changed.")
        return 1
    return None


def reset(argv: list[str]) -> int:
    parser = step_command_parser(
        "reset", "Put a step's skeleton back; your files are saved first (restore NN puts them back)."
    )
    parser.add_argument("--all", action="store_true", help="every step you have started")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    options = parser.parse_args(argv)
    if bool(options.step) == options.all:
        parser.error("give a step (reset 03) or --all, not both" if options.all else "reset which step? e.g. reset 03")
    steps = [s for s in available_steps() if not progress.not_started(s)] if options.all else [options.step]
    if not steps:
        print("Every step is the skeleton already; nothing to reset.")
        return 0
    files = ", ".join(f for step in steps for f in progress.shipped_files(step))
    if not options.yes:
        refused = _confirm("reset", f"Reset {files} to the skeleton? Your files are saved first.")
        if refused is not None:
            return refused
    try:
        done = progress.reset_steps(steps)
    except LookupError as error:
        print(f"error: {error}; nothing was changed", file=sys.stderr)
        return 1
    for step, (folder, changed) in done.items():
        print(f"Your files are saved in {folder.relative_to(REPO_ROOT)}/ (restore {step} puts them back)")
        print(f"Reset to the skeleton: {', '.join(changed)}" if changed else "They were the skeleton already.")
    return 0


def restore(argv: list[str]) -> int:
    parser = step_command_parser(
        "restore", "Put your last backup of a step back (what reset saved); the files there now are saved first."
    )
    options = parser.parse_args(argv)
    with_backups = [step for step in available_steps() if progress.backups(step)]
    if options.step is None:
        which = f"steps with a backup: {', '.join(with_backups)}" if with_backups else "no step has a backup yet"
        parser.error(f"restore which step? e.g. restore 03 ({which})")
    try:
        restored, saved, written = progress.restore(options.step)
    except LookupError as error:
        print(f"error: {error}; nothing was changed", file=sys.stderr)
        return 1
    print(f"The files there before are saved in {saved.relative_to(REPO_ROOT)}/ (restore {options.step} again undoes)")
    print(f"Restored from {restored.relative_to(REPO_ROOT)}/: {', '.join(written)}")
    return 0
