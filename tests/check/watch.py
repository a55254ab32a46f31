"""`python -m tests.check watch [NN]`: re-check the step you are on every time you save it, move on when it passes.

Starts at the first step that does not pass (or at NN). A save re-runs the step's checks, also in the
middle of a run, which is then cancelled (its process is killed). On a terminal the keys are
`h` next hint, `l` list the steps, `n` next step, `r` re-run, `q` quit; without one it re-checks on
every save until SIGINT or SIGTERM. File events come from watchfiles (the directory is watched, so
editors that save by writing a new file and renaming it are seen too).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import sys
import threading
from pathlib import Path

import watchfiles

from tests.check import progress
from tests.check.commands import first_step_not_passing, hint_text, status_rows
from tests.check.engine import REPO_ROOT, RunCancelled, available_steps, load_checklist, run_checklist
from tests.check.printer import ReportPrinter, summary
from tests.check.sandbox import Spare

KEYS = "[h] hint  [l] list  [n] next step  [r] re-run  [q] quit"


class Watcher:
    def __init__(self, step: str, interactive: bool, out=None):
        self.step, self.interactive, self.out = step, interactive, out or sys.stdout
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.run_thread: threading.Thread | None = None
        self.cancel = threading.Event()
        self.spare: Spare | None = None

    # -- the threads that feed the event queue -------------------------------------------------
    def watch_files(self) -> None:
        for changes in watchfiles.watch(REPO_ROOT / "steps", stop_event=self.stop, debounce=200, rust_timeout=500):
            self.events.put(("changed", {Path(path).resolve() for _, path in changes}))

    def read_keys(self) -> None:
        while not self.stop.is_set():
            key = sys.stdin.read(1)
            if not key:
                return
            self.events.put(("key", key.lower()))

    # -- one run of the checks -------------------------------------------------------------------
    def files(self) -> set[Path]:
        return {path.resolve() for path in progress.learner_files(self.step)}

    def start_run(self) -> None:
        self.cancel_run()
        self.cancel = threading.Event()
        self.run_thread = threading.Thread(target=self.run, args=(self.step, self.cancel), daemon=True)
        self.run_thread.start()

    def cancel_run(self) -> None:
        if self.run_thread and self.run_thread.is_alive():
            self.cancel.set()
            self.run_thread.join()

    def run(self, step: str, cancel: threading.Event) -> None:
        """The quick checks first (feedback in seconds); when they pass, every check, slow ones included."""
        total = len(available_steps())
        checklist = load_checklist(step)
        spares = [self.spare, Spare(REPO_ROOT / checklist.skeleton, checklist.preload)]  # the second starts now
        self.spare = None
        try:
            for quick in (True, False):
                report = self.run_once(step, cancel, quick, spares.pop(0))
                if report is None:
                    return  # cancelled
                if not report.passed or not quick:
                    progress.store_report(step, report)  # a passing quick run is not "done": it skipped checks
                judged = [r for r in report.results if r.status != "skipped"]
                passed = sum(r.passed for r in judged)
                self.print(f"\nstep {int(step)} of {total} · {passed}/{len(judged)} checks · {summary(report)}")
                if not report.passed or not quick or not any(r.status == "skipped" for r in report.results):
                    break  # the full run is the last (checks a machine cannot run stay skipped in it)
                self.print("The quick checks pass; now the slow ones too (they compile).")
        finally:
            for spare in (s for s in spares if s is not None):  # unused: the next run of this step takes it
                if self.spare is None and not cancel.is_set():
                    self.spare = spare
                else:
                    spare.discard()
        self.events.put(("done", step, report.passed))

    def run_once(self, step: str, cancel: threading.Event, quick: bool, spare: Spare | None):
        from tests.check.__main__ import parse_check_arguments

        checklist, options = parse_check_arguments([step, *(["--quick"] if quick else [])])
        self.print(f"\n── step {step} of {len(available_steps())}: {checklist.title} ── {checklist.skeleton}")
        printer = ReportPrinter(out=self.out)
        try:
            report = run_checklist(
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
        for line in printer.cascades():
            self.print(line)
        return report

    # -- the loop --------------------------------------------------------------------------------
    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def prepare_spare(self) -> None:
        """A worker with the step's libraries already imported, for the next run (MAX takes seconds)."""
        if self.spare is None:
            checklist = load_checklist(self.step)
            self.spare = Spare(REPO_ROOT / checklist.skeleton, checklist.preload)

    def move_to(self, step: str) -> None:
        if self.spare is not None:
            self.spare.discard()
            self.spare = None
        self.step = step
        self.start_run()

    def loop(self) -> int:
        threads = [threading.Thread(target=self.watch_files, daemon=True)]
        if self.interactive:
            threads.append(threading.Thread(target=self.read_keys, daemon=True))
        for thread in threads:
            thread.start()
        self.print(f"Watching steps/ — save your file to re-check it. {KEYS if self.interactive else 'Ctrl-C stops.'}")
        self.prepare_spare()
        self.start_run()
        steps = available_steps()
        while True:
            event = self.events.get()
            if event[0] == "quit" or event == ("key", "q"):
                break
            if event[0] == "changed" and event[1] & self.files():
                self.print("\n(saved: checking again)")
                self.start_run()
            elif event[0] == "done":
                _, step, passed = event
                if passed and step == self.step and step != steps[-1]:
                    self.print(f"Step {step} passes every check ✅ — on to step {steps[steps.index(step) + 1]}.")
                    self.move_to(steps[steps.index(step) + 1])
                elif passed and step == steps[-1]:
                    self.print("Every step passes ✅. The book's 'Going further' pages are next.")
                else:
                    self.prepare_spare()
                    if self.interactive:
                        self.print(KEYS)
            elif event == ("key", "h"):
                self.print("\n" + hint_text(self.step))
            elif event == ("key", "l"):
                for step, title, where, state in status_rows():
                    self.print(f"{'→' if step == self.step else ' '} {step}  {title:<46} {where:<18} {state}")
            elif event == ("key", "n"):
                self.move_to(steps[(steps.index(self.step) + 1) % len(steps)])
            elif event == ("key", "r"):
                self.start_run()
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
    import termios
    import tty

    saved = termios.tcgetattr(sys.stdin)
    try:
        tty.setcbreak(sys.stdin.fileno())
        yield
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


def main(argv: list[str]) -> int:
    from tests.check.__main__ import step_id

    parser = argparse.ArgumentParser(prog="python -m tests.check watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", type=step_id, help="start at this step (default: the first not passing)")
    options = parser.parse_args(argv)
    interactive = sys.stdin.isatty() and os.environ.get("TERM") != "dumb"
    watcher = Watcher(options.step or first_step_not_passing(), interactive)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: watcher.events.put(("quit",)))
    with keys_without_enter(interactive):
        return watcher.loop()
