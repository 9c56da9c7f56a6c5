"""The commands' exit: objects are frozen before the interpreter's last collections, and only there."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Registered before the function under test, so (atexit runs last-in first-out) it runs after it.
_REPORT = "import atexit, gc; atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0)); "


def _exit_report(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", _REPORT + code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_a_command_that_asks_exits_with_its_objects_frozen_and_one_that_does_not_is_left_alone() -> None:
    assert _exit_report("from mlfleet.shutdown import skip_final_collections; skip_final_collections()") == \
        "frozen at exit: True"
    assert _exit_report("import mlfleet.shutdown") == "frozen at exit: False"  # importing it changes nothing


@pytest.mark.parametrize("entry", ["cli", "training"])
def test_the_mlfleet_command_and_the_training_entrypoint_ask_for_it(entry: str) -> None:
    if entry == "cli":  # any subcommand runs the app's callback; a missing spec fails fast
        code = ("import sys; from mlfleet.cli import app; sys.argv = ['mlfleet', 'plan', '/nonexistent.yaml']\n"
                "try:\n    app()\nexcept SystemExit:\n    pass")
    else:  # run as `python -m mlfleet.training.entrypoint`, on a root with no job: it fails, and exits
        code = ("import runpy, sys; sys.argv = ['entrypoint', 'train', '--root', '/nonexistent-mlfleet-root']\n"
                "try:\n    runpy.run_module('mlfleet.training.entrypoint', run_name='__main__')\n"
                "except SystemExit:\n    pass")
    assert _exit_report(code) == "frozen at exit: True"
