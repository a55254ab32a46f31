"""What a learner reads: a cause said once, and a framework's error turned into what it means at their line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT, Report, Result, explain
from tests.check.printer import ReportPrinter
from tests.check.sandbox import LearnerError

ZOO = REPO_ROOT / "tests" / "zoo"


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


def test_a_skip_reason_is_given_once_and_each_skipped_check_is_still_listed():
    reason = "--device cpu: the GPU kernel is not run here"
    results = [Result(f"GPU: {n}", "skipped", reason) for n in ("a", "b", "c")]
    results.append(Result("other", "skipped", "--only 'x' selects other checks"))
    text = printed(results)
    assert text.count(reason) == 1 and "--only 'x' selects other checks" in text, text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("⏭")] == ["a", "b", "c", "other"]
    assert printed(results, verbose=True).count(reason) == 3


def checker(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.check", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)


def test_one_mistake_is_one_failure_and_json_and_verbose_keep_every_check():
    case = str(ZOO / "step_01" / "bad_unbiased_variance.py")
    report = checker("01", "--file", case)
    assert report.stdout.count("❌") == 1 and report.stdout.count("variance looks unbiased") == 1, report.stdout
    assert "also fails for the reason under “worked example 1”: worked examples 3-4; random inputs" in report.stdout
    failed = [c for c in json.loads(checker("01", "--file", case, "--json").stdout)["checks"] if not c["passed"]]
    assert len(failed) > 5 and all("unbiased" in c["message"] for c in failed)
    assert checker("01", "--file", case, "--verbose").stdout.count("❌") == len(failed)


# Messages as NumPy 2, PyTorch 2 and MAX 26 raise them, and what the hint must say instead.
FRAMEWORK_ERRORS = [
    ("ValueError", "operands could not be broadcast together with shapes (4,8) (4,) ", ["(4,8) and (4,)", "keepdims"]),
    ("ValueError", "cannot reshape array of size 2 into shape (3,)", ["2 values into shape (3,)", "one value per row"]),
    ("AxisError", "axis 1 is out of bounds for array of dimension 1", ["no axis 1 in a 1-D array", "keepdims"]),
    (
        "ValueError",
        "non-broadcastable output operand with shape (2,1) doesn't match the broadcast shape (2,3)",
        ["shaped (2,3) into an array shaped (2,1)", "in place"],
    ),
    (
        "RuntimeError",
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        "[torch.FloatTensor [4, 8]], which is output 0 of ExpBackward0, is at version 1; expected version 0 instead.",
        ["in-place operation changed a tensor autograd saved", "not y +="],
    ),
    (
        "RuntimeError",
        "Trying to backward through the graph a second time (or directly access saved tensors after they have "
        "already been freed).",
        ["through the same graph twice", "earlier call"],
    ),
    (
        "RuntimeError",
        "element 0 of tensors does not require grad and does not have a grad_fn",
        ["cut from the autograd graph", ".detach()"],
    ),
    (
        "RuntimeError",
        "The size of tensor a (8) must match the size of tensor b (4) at non-singleton dimension 1",
        ["sizes 8 and 4 do not broadcast at dimension 1", "keepdim=True"],
    ),
    ("RuntimeError", "expected m1 and m2 to have the same dtype, but got: float != double", ["two dtypes", ".to("]),
    (
        "ValueError",
        "Failed to create op 'SubOp':\nInputs:\n    input_x = TensorValue(dtype=float32, shape=[Dim(4), Dim(8)])\n"
        "Diagnostics:\n    Input lhs (shape [4, 8]) dimension at axis 1 (value 8) and input rhs (shape [4]) dimension "
        "at axis 0 (value 4) are neither equivalent nor broadcastable.",
        ["MAX cannot broadcast the inputs of SubOp", "keeping its axis"],
    ),
]


@pytest.mark.parametrize("kind, message, phrases", FRAMEWORK_ERRORS, ids=[m[:40] for _, m, _ in FRAMEWORK_ERRORS])
def test_a_framework_error_becomes_what_it_means_at_the_learners_line(kind, message, phrases):
    error = LearnerError(f"{kind}: {message}", exc_type=kind, detail=message, where=(12, "y = x - mean"))
    hint = explain(error, Path("step_01.py"))
    assert "(step_01.py:12: `y = x - mean`)" in hint
    assert message.split(":")[0].split("(")[0] not in hint  # the framework's own words are not repeated
    for phrase in phrases:
        assert phrase in hint, hint


def test_an_error_outside_the_table_is_shown_as_it_was_raised():
    error = LearnerError("ZeroDivisionError: division by zero", exc_type="ZeroDivisionError", detail="division by zero")
    assert explain(error, Path("step_01.py")) == "Your code raised ZeroDivisionError: division by zero."


def test_a_report_names_a_missing_keepdims_at_the_learners_line_not_numpys_words(tmp_path):
    path = tmp_path / "submission.py"
    path.write_text(
        "import numpy as np\n\n\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n"
        "    mean = x.mean(axis=1, keepdims=True)\n"
        "    var = ((x - mean) ** 2).mean(axis=1)\n"
        "    return gamma * (x - mean) / np.sqrt(var + eps) + beta, None\n"
    )
    report = checker("01", "--file", str(path))
    assert "could not be broadcast" not in report.stdout, report.stdout
    assert "submission.py:7" in report.stdout and "without keepdims=True" in report.stdout
