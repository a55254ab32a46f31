"""`python -m tests.check watch [NN]`: re-check the step you are on every time you save it, move on when it passes.

Starts at the first step that does not pass (or at NN), from its recorded results when its files and the
checker are unchanged since: a restart re-runs nothing. A save re-runs the step's checks, also in the
middle of a run, which is then cancelled (its process is killed). On a terminal each report redraws the
screen (the summary and the keys always at the end) and the keys are `h` next hint (starting at the one
about the check that fails), `c` your blocks beside the solution's, `l` list the steps, `n` next step,
`r` re-run, `q` quit; without one it prints each report after the last and re-checks on every save until
SIGINT or SIGTERM. File events come from watchfiles (the directory is watched, so editors that save by
writing a new file and renaming it are seen too).

A step passing after a save (or at the start) moves the watch on to the next step; a step reached with
`n` is shown, never skipped, and `n` at the last step stays there.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import io
import os
import queue
import shutil
import signal
import sys
import termios
import threading
import tty
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from tests.check import progress
from tests.check.cli import parse_check_arguments, step_id
from tests.check.commands import course_status, done_label, first_step_not_passing, hint_text
from tests.check.compare import compare_lines
from tests.check.engine import REPO_ROOT, Result, RunCancelled, available_steps, load_checklist, run_checklist
from tests.check.printer import ReportPrinter
from tests.check.sandbox import Spare

CLEAR = "\033[H\033[2J\033[3J"  # cursor home, clear the screen and the scrollback: the report starts at the top
KEYS = "press h for a hint · c compare with the solution · l list the steps · n next step · r re-run · q quit"


def report_lines(report: dict, streamed: bool = False) -> list[str]:
    """A report (the `--json` shape) as the checker prints it: each result, the cascades, the notes.
    `streamed`: the results are on the screen already, only what follows them."""
    printer = ReportPrinter(out=io.StringIO())
    for check in report.get("checks", []):
        printer.result(Result(check["name"], check["status"], check.get("message", ""), check.get("cause")))
    if streamed:
        return printer.cascades()
    notes = [str(note) for note in report.get("notes", [])]
    return printer.out.getvalue().splitlines() + printer.cascades() + ([""] + notes if notes else [])


def summary_line(step: str, report: dict) -> str:
    """`step 1 of 6 · 2/14 checks · 2 passed, 12 failed`, and what a passing step left unchecked here."""
    checks = report.get("checks", [])
    counts = {status: sum(c["status"] == status for c in checks) for status in ("passed", "failed", "skipped")}
    judged = counts["passed"] + counts["failed"]
    line = f"step {int(step)} of {len(available_steps())} · {counts['passed']}/{judged} checks · "
    line += f"{counts['passed']} passed, {counts['failed']} failed"
    line += f", {counts['skipped']} skipped" if counts["skipped"] else ""
    untested = progress.untested_parts(report)
    return line + (f" · {done_label(untested)}" if report.get("passed") and untested else "")


class Trigger(enum.Enum):
    """What started a run: only a pass after a save (or at start-up) moves the watch on to the next step."""

    START = "start"
    SAVE = "save"
    NEXT = "n"
    RERUN = "r"
    ADVANCE = "advance"


# What the watch's threads tell its loop (a typo in a field or a kind fails at import, not in a learner's session).
@dataclass(frozen=True)
class Saved:
    paths: frozenset[Path]


@dataclass(frozen=True)
class Pressed:
    key: str


@dataclass(frozen=True)
class RunDone:
    number: int  # the run's number: a late result of a run the watch has moved on from is dropped
    step: str
    report: dict
    trigger: Trigger


@dataclass(frozen=True)
class Quit:
    pass


class Watcher:
    def __init__(self, step: str, interactive: bool, out=None):
        self.step, self.interactive, self.out = step, interactive, out or sys.stdout
        self.redraw = interactive and self.out.isatty()  # clear the screen for each report
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.run_thread: threading.Thread | None = None
        self.cancel = threading.Event()
        self.spare: Spare | None = None
        self.lock = threading.Lock()  # the run thread streams results while keys print hints
        self.report: dict | None = None  # the last results of self.step, as shown
        self.banner = ""  # a line above the header: why the watch moved to this step
        self.origin = ""  # a line under it: where the results shown come from
        self.running = False
        self.runs = 0  # the number of the run in progress (a late result of an older run is dropped)

    # -- the threads that feed the event queue -------------------------------------------------
    def watch_files(self) -> None:
        for changes in watchfiles.watch(REPO_ROOT / "steps", stop_event=self.stop, debounce=200, rust_timeout=500):
            self.events.put(Saved(frozenset(Path(path).resolve() for _, path in changes)))

    def read_keys(self) -> None:
        while not self.stop.is_set():
            key = sys.stdin.read(1)
            if not key:
                return
            self.events.put(Pressed(key.lower()))

    # -- the screen ----------------------------------------------------------------------------------
    def print(self, text: str) -> None:
        with self.lock:
            print(text, file=self.out, flush=True)

    def header(self) -> list[str]:
        checklist = load_checklist(self.step)
        title = f"── step {self.step} of {len(available_steps())}: {checklist.title} ── {checklist.skeleton}"
        return [line for line in (self.banner, title, self.origin) if line]

    def show(self, extra: list[str] = (), streamed: bool = False) -> None:
        """The step's screen: its report, `extra` (a hint, the list), then the summary and the keys. On a
        terminal it replaces what was there; else it follows (without the results already printed)."""
        if self.running:  # the results are streaming: add below them, the run ends with its own redraw
            self.print("\n".join(["", *extra]))
            return
        whole = self.redraw or not streamed
        lines = self.header() if whole else []
        if self.report is not None:
            lines += report_lines(self.report, streamed=not whole)
        lines += ["", *extra] if extra else []
        lines += ["", *self.footer()]
        with self.lock:
            print((CLEAR if self.redraw else "") + "\n".join(lines), file=self.out, flush=True)

    def footer(self) -> list[str]:
        """The summary and what to do next, the keys last."""
        keys = [KEYS] if self.interactive else []
        if self.report is None:
            return keys
        steps = available_steps()
        later = steps[steps.index(self.step) + 1 :]
        if not self.report.get("passed"):
            mine = ", ".join(path.relative_to(REPO_ROOT).as_posix() for path in progress.learner_files(self.step))
            stuck = "; stuck? press h for a hint" if self.interactive else ""
            verdict = f"Save {mine} to check it again{stuck}."
        elif later:
            verdict = f"Step {self.step} passes every check ✅" + (
                f" — press n for step {later[0]}." if self.interactive else "."
            )
        elif all(s.done for s in course_status(recheck=False)):
            verdict = "Every step passes ✅. The book's 'Going further' pages are next."
        else:
            verdict = f"Step {self.step} passes every check ✅; press l to see the steps still to do."
        return [summary_line(self.step, self.report), verdict, *keys]

    # -- one run of the checks -------------------------------------------------------------------
    def files(self) -> set[Path]:
        return {path.resolve() for path in progress.learner_files(self.step)}

    def start_run(self, trigger: Trigger, why: str) -> None:
        """Check the step; its `trigger` decides whether a pass moves on."""
        self.cancel_run()
        self.cancel = threading.Event()
        self.running, self.origin = True, why
        self.runs += 1
        with self.lock:
            print((CLEAR if self.redraw else "\n") + "\n".join(self.header()), file=self.out, flush=True)
        args = (self.step, self.cancel, trigger, self.runs)
        self.run_thread = threading.Thread(target=self.run, args=args, daemon=True)
        self.run_thread.start()

    def cancel_run(self) -> None:
        if self.run_thread and self.run_thread.is_alive():
            self.cancel.set()
            self.run_thread.join()
        self.running = False

    def run(self, step: str, cancel: threading.Event, trigger: Trigger, number: int) -> None:
        """The quick checks first (feedback in seconds); when they pass, every check, slow ones included."""
        checklist = load_checklist(step)
        spares = [self.spare, Spare(REPO_ROOT / checklist.skeleton, checklist.preload)]  # the second starts now
        self.spare = None
        report = None
        try:
            for quick in (True, False):
                report = self.run_once(step, cancel, quick, spares.pop(0))
                if report is None:
                    return  # cancelled
                if not report.passed or not quick:
                    progress.store_report(step, report)  # a passing quick run is not "done": it skipped checks
                if not report.passed or not quick or not any(r.status == "skipped" for r in report.results):
                    break  # the full run is the last (checks a machine cannot run stay skipped in it)
                self.print(f"\n{summary_line(step, report.as_json())}")
                self.print("The quick checks pass; now the slow ones too (they compile).")
        finally:
            for spare in (s for s in spares if s is not None):  # unused: the next run of this step takes it
                if self.spare is None and not cancel.is_set():
                    self.spare = spare
                else:
                    spare.discard()
        self.events.put(RunDone(number, step, report.as_json(), trigger))

    def run_once(self, step: str, cancel: threading.Event, quick: bool, spare: Spare | None):
        checklist, options = parse_check_arguments([step, *(["--quick"] if quick else [])])
        printer = ReportPrinter(out=self.out)
        printer._print = self.print  # under the watch's lock: a key's lines never land inside a result's
        try:
            return run_checklist(
                checklist,
                REPO_ROOT / checklist.skeleton,
                options,
                on_result=printer.result,
                on_note=printer.note,
                cancel=cancel,
                spare=spare,
            )
        except RunCancelled:
            return None

    # -- the loop --------------------------------------------------------------------------------
    def prepare_spare(self) -> None:
        """A worker with the step's libraries already imported, for the next run (MAX takes seconds)."""
        if self.spare is None:
            checklist = load_checklist(self.step)
            self.spare = Spare(REPO_ROOT / checklist.skeleton, checklist.preload)

    def move_to(self, step: str, trigger: Trigger, banner: str = "") -> None:
        """Show `step`: its recorded results when its files and the checker did not change since, else a run."""
        self.cancel_run()
        if self.spare is not None and step != self.step:
            self.spare.discard()
            self.spare = None
        self.step, self.banner = step, banner
        self.report = progress.cached_report(step)
        if self.report is None:
            self.start_run(trigger, "(checking: no results for these files yet)")
            return
        self.origin = "(the last results: your files and the checker have not changed since)"
        self.show()
        self.prepare_spare()

    def on_done(self, done: RunDone) -> None:
        number, step, report, trigger = done.number, done.step, done.report, done.trigger
        if number != self.runs or step != self.step:
            return  # a run the watch has moved on from
        self.running, self.report, self.origin = False, report, ""
        steps = available_steps()
        if report.get("passed") and trigger in (Trigger.START, Trigger.SAVE) and step != steps[-1]:
            nxt = steps[steps.index(step) + 1]
            if not self.redraw:  # the results stay above the next step's: close them with their summary
                self.print("\n".join([*report_lines(report, streamed=True), "", summary_line(step, report)]))
            self.move_to(nxt, Trigger.ADVANCE, f"Step {step} passes every check ✅ — on to step {nxt}.")
            return
        self.show(streamed=True)
        self.prepare_spare()

    def on_key(self, key: str) -> None:
        steps = available_steps()
        if key == "h":
            self.show(hint_text(self.step, progress.first_failure(self.report), in_watch=True).splitlines())
        elif key == "c":
            width = shutil.get_terminal_size((100, 40)).columns
            self.show(compare_lines(self.step, colour=self.redraw, width=width))
        elif key == "l":
            rows = course_status(recheck=False)  # recorded results only: a list must not wait for checks
            self.show([f"{'→' if s.step == self.step else ' '} {s.step}  {s.title:<46} {s.label}" for s in rows])
        elif key == "n":
            if self.step == steps[-1]:
                self.show([f"Step {self.step} is the last step; press l for the list of steps."])
            else:
                self.move_to(steps[steps.index(self.step) + 1], Trigger.NEXT)
        elif key == "r":
            self.start_run(Trigger.RERUN, "(checking again: r)")

    def loop(self) -> int:
        threads = [threading.Thread(target=self.watch_files, daemon=True)]
        if self.interactive:
            threads.append(threading.Thread(target=self.read_keys, daemon=True))
        for thread in threads:
            thread.start()
        if not self.redraw:
            keys = KEYS if self.interactive else "Ctrl-C stops."
            self.print(f"Watching steps/ — save your file to re-check it. {keys}")
        self.move_to(self.step, Trigger.START)
        while True:
            event = self.events.get()
            if isinstance(event, Quit) or event == Pressed("q"):
                break
            if isinstance(event, Saved) and event.paths & self.files():
                self.banner = ""
                self.start_run(Trigger.SAVE, "(saved: checking again)")
            elif isinstance(event, RunDone):
                self.on_done(event)
            elif isinstance(event, Pressed):
                self.on_key(event.key)
        self.stop.set()
        self.cancel_run()
        if self.spare is not None:
            self.spare.discard()
        return 0


@contextlib.contextmanager
def keys_without_enter(interactive: bool):
    """Single key presses, no echo, on a terminal; the terminal is put back however the watch ends."""
    if not interactive:
        yield
        return
    saved = termios.tcgetattr(sys.stdin)
    try:
        tty.setcbreak(sys.stdin.fileno())
        yield
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.check watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", type=step_id, help="start at this step (default: the first not passing)")
    options = parser.parse_args(argv)
    interactive = sys.stdin.isatty() and os.environ.get("TERM") != "dumb"
    watcher = Watcher(options.step or first_step_not_passing(), interactive)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: watcher.events.put(Quit()))
    with keys_without_enter(interactive):
        return watcher.loop()
