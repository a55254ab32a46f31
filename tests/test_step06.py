"""Step 06 beyond the shared promises of tests/test_steps.py: compiler errors a learner can read, speed."""

import re

import pytest

from tests.check.engine import REPO_ROOT
from tests.check.step_06 import compiler_message
from tests.zoo_helpers import cli_json

SKELETON = REPO_ROOT / "steps" / "step_06"


def test_compiler_message_keeps_file_line_and_error():
    stderr = (
        "Failed to initialize Crashpad.  Crash reporting will not be available.\n"
        f"{SKELETON}/layer_norm.mojo:31:24: error: expected ')' in call argument list\n"
        "            var squares: Float32 = 0\n"
        "                       ^\n"
        ".venv/bin/mojo: error: failed to parse the provided Mojo source module\n"
    )
    message = compiler_message(stderr, SKELETON)
    assert message.startswith("steps/step_06/layer_norm.mojo:31:24: error: expected ')'"), message
    assert "Crashpad" not in message and "failed to parse" not in message


@pytest.mark.mojo
def test_the_solution_gets_a_speed_note_not_a_check():
    _, report = cli_json("06", "--solution")
    [line] = [note for note in report["notes"] if note.startswith("Speed at 4096 x 768:")]
    assert re.search(r"yours [\d.]+ ms, the built-in [\d.]+ ms \(median of 25, in turns\): [\d.]+× its time", line)
    assert not any("speed" in check["name"] for check in report["checks"])
