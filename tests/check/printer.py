"""The ✅/❌ report on a terminal: each result as it comes, a cascade of one cause told once."""

from __future__ import annotations

import re
import sys

from tests.check.engine import Report, Result

MARKS = {"passed": "✅", "failed": "❌", "skipped": "⏭ "}
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)


class ReportPrinter:
    """Prints results as they arrive; a cause is told once, unless `verbose`.

    A failure with the same cause as one already shown (the same placeholder's line, the same blocked step)
    is counted instead of repeated, and so is one whose hint is the same but for its numbers ("max error 0.3"
    and "max error 0.5"): the end of the report names the checks each shown failure also fails. A skipped
    check whose reason was given above is listed without it.
    """

    def __init__(self, verbose: bool = False, out=None):
        self.verbose, self.out = verbose, out or sys.stdout
        self.shown: dict[str, list[str]] = {}  # cause -> names of the later checks it also failed
        self.hints: dict[str, str] = {}  # a shown failure's hint, numbers aside -> that check's name
        self.same_hint: dict[str, list[str]] = {}  # a shown check's name -> the later checks failed with its hint
        self.skip_reasons: set[str] = set()  # reasons already given for a skipped check

    def result(self, result: Result) -> None:
        if result.status == "failed" and not self.verbose:
            if result.cause in self.shown:
                self.shown[result.cause].append(result.name)
                return
            first = self.hints.get(same_hint_key(result.message))
            if first is not None:
                self.same_hint[first].append(result.name)
                return
        line = f"{MARKS[result.status]} {result.name}"
        if result.status == "passed":
            self._print(line + (f"  ({result.message})" if result.message else ""))
        elif result.status == "skipped" and not self.verbose and result.message in self.skip_reasons:
            self._print(line)  # the same reason as the skip above it: said once
        elif result.status == "skipped":
            self.skip_reasons.add(result.message)
            self._print(f"{line}\n   ↳ {result.message}")
        else:
            self._print(f"{line}\n   ↳ {result.message}")
            if result.cause is not None:
                self.shown.setdefault(result.cause, [])
            self.hints.setdefault(same_hint_key(result.message), result.name)
            self.same_hint.setdefault(result.name, [])

    def note(self, line: str) -> None:
        self._print(line)

    def cascades(self) -> list[str]:
        """One line per cause that failed more checks than it showed."""
        blocked = [
            f"… {len(names)} more check{'s' * (len(names) != 1)} not judged until this is fixed "
            f"({_brief(cause)}; --verbose lists them)"
            for cause, names in self.shown.items()
            if names
        ]
        also = [
            f"… also fails for the reason under “{label(first)}”: {'; '.join(label(name) for name in names)} "
            "(--verbose shows each)"
            for first, names in self.same_hint.items()
            if names
        ]
        return blocked + also

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


def same_hint_key(message: str) -> str:
    """A hint with its numbers left out: two failures whose hints differ only in numbers share one cause."""
    return NUMBER.sub("#", message)


def label(name: str) -> str:
    """A check's name without its trailing details: "worked example 1 (eps=0): [[1, 2], ...]" -> "worked example 1"."""
    short = re.sub(r"\s*\([^()]*\)$", "", name.split(": ")[0])
    return short or name


def _brief(cause: str, limit: int = 90) -> str:
    """A cause as the cascade line names it: a long verdict is shown above in full."""
    cause = cause.rstrip(".")
    return cause if len(cause) <= limit else cause[: limit - 1].rstrip() + "…"


def summary(report: Report) -> str:
    skipped = report.count("skipped")
    return f"{report.count('passed')} passed, {report.count('failed')} failed" + (
        f", {skipped} skipped" if skipped else ""
    )
