"""The learner's commands besides checking a step: `status`, `hint NN`, `reset NN` (`watch` has its own module).

python -m tests.check                 the course at a glance (same as `status`)
python -m tests.check status [--refresh] [--markdown]
python -m tests.check status --started   the numbers of the steps you have started, one a line (runs nothing)
python -m tests.check hint 03         the next hint for step 03, one level at a time
python -m tests.check reset 03 [--yes]   your file saved to .checker/backups/, the skeleton put back
"""

from __future__ import annotations

import argparse
import sys

from tests.check import progress
from tests.check.engine import REPO_ROOT, available_steps, load_checklist, run_checklist
from tests.check.formats import markdown_report, table


def step_report(step: str, refresh: bool = False, on_start=None) -> dict | None:
    """The step's last results, from the cache when its files did not change; None if not started."""
    if progress.not_started(step):
        return None
    report = None if refresh else progress.cached_report(step)
    if report is None:
        from tests.check.__main__ import parse_check_arguments

        if on_start:
            on_start(step)
        checklist, options = parse_check_arguments([step])
        report = run_checklist(checklist, REPO_ROOT / checklist.skeleton, options).as_json()
        progress.store_report(step, report)
    return report


def status_rows(refresh: bool = False, on_start=None) -> list[tuple[str, str, str, str]]:
    """(step, title, file, state) for every step; runs only the steps whose files changed."""
    rows = []
    for step in available_steps():
        checklist = load_checklist(step)
        state, passed, total = progress.state_of(step_report(step, refresh, on_start), not progress.not_started(step))
        label = {"done": "done ✅", "in progress": f"in progress ({passed}/{total} checks)"}.get(state, state)
        where = checklist.skeleton.rsplit("/", 1)[0] + "/" if checklist.skeleton.count("/") > 1 else checklist.skeleton
        rows.append((step, checklist.title, where, label))
    return rows


def first_step_not_passing() -> str:
    """The first step whose last results (for its files as they are now) do not all pass; no check is run."""
    for step in available_steps():
        report = progress.cached_report(step)
        if report is None or not report.get("passed"):
            return step
    return available_steps()[-1]


def first_unfinished(rows) -> str | None:
    return next((step for step, _, _, state in rows if state != "done ✅"), None)


def status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.check status", description="Where you are in the course.")
    parser.add_argument("--refresh", action="store_true", help="re-run the checks of every started step")
    parser.add_argument(
        "--started", action="store_true", help="only print the numbers of the steps you have started (for scripts)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print as Markdown, with the ✅/❌ table of each started step (CI)"
    )
    options = parser.parse_args(argv)
    if options.started:
        for step in available_steps():
            if not progress.not_started(step):
                print(step)
        return 0
    rows = status_rows(options.refresh, on_start=lambda step: print(f"(checking step {step}…)", file=sys.stderr))
    nxt = first_unfinished(rows)
    if options.markdown:
        reports = [report for report in map(step_report, available_steps()) if report]  # cached by status_rows
        print("## Your progress\n")
        print(table(["step", "title", "your file", "state"], [list(row) for row in rows]) + "\n")
        print(f"Next: step {nxt}: `make s{nxt}` (or `make watch`)\n" if nxt else "All done ✅\n")
        print("\n".join(markdown_report(report) for report in reports), end="")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"{'step':<4}  {'title':<{widths[1]}}  {'your file':<{widths[2]}}  state")
    for step, title, where, state in rows:
        print(f"{step:<4}  {title:<{widths[1]}}  {where:<{widths[2]}}  {state}")
    print(f"\nNext: step {nxt}: make s{nxt} (or make watch); stuck? make hint NN={nxt}" if nxt else "\nAll done ✅")
    return 0


def hint(argv: list[str]) -> int:
    from tests.check.__main__ import step_id

    parser = argparse.ArgumentParser(prog="python -m tests.check hint", description="The next hint for a step.")
    parser.add_argument("step", nargs="?", type=step_id, help="step number, e.g. 03 (default: the step you are on)")
    options = parser.parse_args(argv)
    print(hint_text(options.step or first_step_not_passing()))
    return 0


def hint_text(step: str) -> str:
    level, levels, title, text = progress.next_hint(step)
    after = (
        f"(`make hint NN={step}` again for hint {level + 1} of {levels})"
        if level < levels
        else f"That was the last hint. The solution, beside your blocks: make compare NN={step}"
    )
    return f"Hint {level} of {levels} for step {step}: {title}\n\n{text}\n\n{after}"


def reset(argv: list[str]) -> int:
    from tests.check.__main__ import step_id

    parser = argparse.ArgumentParser(
        prog="python -m tests.check reset", description="Put a step's skeleton back; your files are saved first."
    )
    parser.add_argument("step", type=step_id, help="step number, e.g. 03")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    options = parser.parse_args(argv)
    files = ", ".join(progress.shipped_files(options.step))
    if not options.yes:
        if not sys.stdin.isatty():
            print(
                "error: reset asks for confirmation on a terminal; add --yes to reset without asking", file=sys.stderr
            )
            return 2
        answer = input(f"Reset {files} to the skeleton? Your files are saved first. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing changed.")
            return 1
    try:
        folder, changed = progress.reset(options.step)
    except LookupError as error:
        print(f"error: {error}; nothing was changed", file=sys.stderr)
        return 1
    print(f"Your files are saved in {folder.relative_to(REPO_ROOT)}/")
    print(f"Reset to the skeleton: {', '.join(changed)}" if changed else "They were the skeleton already.")
    return 0
