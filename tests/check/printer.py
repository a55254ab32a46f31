"""The ✅/❌ report on a terminal: each result as it comes, a cascade of one cause told once."""

from __future__ import annotations

import sys

from tests.check.engine import Report, Result

MARKS = {"passed": "✅", "failed": "❌", "skipped": "⏭ "}


class ReportPrinter:
    """Prints results as they arrive. A failure with the same cause as one already shown (the same
    placeholder's line, the same blocked step) is counted instead of repeated, unless `verbose`."""

    def __init__(self, verbose: bool = False, out=None):
        self.verbose, self.out = verbose, out or sys.stdout
        self.shown: dict[str, list[str]] = {}  # cause -> names of the later checks it also failed

    def result(self, result: Result) -> None:
        if result.status == "failed" and result.cause in self.shown and not self.verbose:
            self.shown[result.cause].append(result.name)
            return
        line = f"{MARKS[result.status]} {result.name}"
        if result.status == "passed":
            self._print(line + (f"  ({result.message})" if result.message else ""))
        else:
            self._print(f"{line}\n   ↳ {result.message}")
            if result.cause is not None:
                self.shown.setdefault(result.cause, [])

    def note(self, line: str) -> None:
        self._print(line)

    def cascades(self) -> list[str]:
        """One line per cause that failed more checks than it showed."""
        return [
            f"… {len(names)} more check{'s' * (len(names) != 1)} not judged until this is fixed "
            f"({_brief(cause)}; --verbose lists them)"
            for cause, names in self.shown.items()
            if names
        ]

    def finish(self, report: Report, step: str) -> None:
        for line in self.cascades():
            self._print(line)
        self._print("")
        if not report.passed:
            self._print(
                f"Stuck? make hint NN={step} gives the next hint; read docs/src/step_{step}.md, or compare "
                f"with the solution: make compare NN={step}"
            )
        self._print(summary(report))

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def _brief(cause: str, limit: int = 90) -> str:
    """A cause as the cascade line names it: a long verdict is shown above in full."""
    cause = cause.rstrip(".")
    return cause if len(cause) <= limit else cause[: limit - 1].rstrip() + "…"


def summary(report: Report) -> str:
    skipped = report.count("skipped")
    return f"{report.count('passed')} passed, {report.count('failed')} failed" + (
        f", {skipped} skipped" if skipped else ""
    )
