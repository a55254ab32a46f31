"""What a learner reads: a cause said once, and a framework's error turned into what it means at their line."""

from __future__ import annotations

import io

from tests.check.engine import Report, Result
from tests.check.printer import ReportPrinter


def printed(results: list[Result], verbose: bool = False) -> str:
    out = io.StringIO()
    printer = ReportPrinter(verbose=verbose, out=out)
    for result in results:
        printer.result(result)
    printer.finish(Report("01", "title", "file.py", results, []), "01")
    return out.getvalue()


def test_hints_that_differ_only_in_their_numbers_are_one_failure_naming_the_other_checks():
    results = [
        Result("worked example 1 (eps=0): [[1, 2]]", "failed", "The variance looks unbiased (max error 0.59)"),
        Result("worked example 2", "passed", "max error 0.0e+00"),
        Result("random inputs (N=7)", "failed", "The variance looks unbiased (max error 0.12)"),
        Result("eps is honoured (eps=10)", "failed", "The variance looks unbiased (max error 7.2e-02)"),
        Result("vectorised", "failed", "layernorm_forward runs 47 lines for 2 rows but 1411 for 64"),
    ]
    text = printed(results)
    assert text.count("❌") == 2 and text.count("The variance looks unbiased") == 1, text
    assert "also fails for the reason under “worked example 1”: random inputs; eps is honoured" in text
    assert "4 failed" in text.splitlines()[-1]  # the count still counts every failed check
    assert printed(results, verbose=True).count("❌") == 4


def test_a_shown_cause_still_collapses_its_cascade_and_other_hints_stay():
    results = [
        Result("a", "failed", "AttributeError ... (line 3)", cause="AttributeError at line 3"),
        Result("b", "failed", "Not run: blocked", cause="AttributeError at line 3"),
        Result("c", "failed", "`dx` differs from the float64 oracle: max error 1.2 at index (0, 1)"),
        Result("d", "failed", "`dgamma` differs from the float64 oracle: max error 1.2 at index (0,)"),
    ]
    text = printed(results)
    assert [line.split()[1] for line in text.splitlines() if line.startswith("❌")] == ["a", "c", "d"]
    assert "… 1 more check not judged until this is fixed (AttributeError at line 3" in text
