"""Keep MAX's side effects on the process environment out of the other tests, and group the tests for
parallel runs (pytest-xdist's `--dist loadgroup`).

Importing MAX (as some step-03 tests do in this process) sets PYTHONEXECUTABLE and PYTHONPATH in
the C-level environment without telling `os.environ`. A child process started afterwards
inherits them and starts outside this virtual environment, without torch. So around every test
the C-level environment is put back to what `os.environ` says.
"""

import os

import pytest

SET_BEHIND_PYTHONS_BACK = ("PYTHONEXECUTABLE", "PYTHONPATH")


def _resync_environment() -> None:
    for name in SET_BEHIND_PYTHONS_BACK:
        if name in os.environ:
            os.putenv(name, os.environ[name])
        else:
            os.unsetenv(name)


@pytest.fixture(autouse=True)
def environment_as_os_environ_says():
    _resync_environment()
    yield
    _resync_environment()


def pytest_collection_modifyitems(items):
    """Tests that compile MAX graphs or Mojo share one worker (one compile at a time, one kernel cache);
    the zoo tests of a step share another, so its reports are computed once per run."""
    for item in items:
        if item.get_closest_marker("max") or item.get_closest_marker("mojo"):
            item.add_marker(pytest.mark.xdist_group("compiles"))
        elif item.originalname in (
            "test_zoo",
            "test_zoo_report_says_each_hint_once",
            "test_every_check_is_failed_by_some_wrong_file",
        ):
            item.add_marker(pytest.mark.xdist_group(f"zoo-{item.callspec.params['step']}"))
