"""The preloading executor: what it imports before its workers fork, and what it does with a bad name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlfleet.airflow import executor


def test_the_list_is_configurable_and_empty_means_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLEET_PRELOAD_MODULES", raising=False)
    assert executor.preload_modules() == executor.PRELOAD_MODULES
    monkeypatch.setenv("MLFLEET_PRELOAD_MODULES", " json , csv,,")
    assert executor.preload_modules() == ("json", "csv")
    monkeypatch.setenv("MLFLEET_PRELOAD_MODULES", "")
    assert executor.preload_modules() == ()


def test_every_default_module_imports_and_a_missing_one_is_skipped_not_raised() -> None:
    # In a fresh interpreter, as the scheduler would: nothing of the list is imported before.
    code = (
        "import sys; from mlfleet.airflow import executor as e; "
        "assert 'mlflow' not in sys.modules; "
        "failed = e.preload(e.PRELOAD_MODULES + ('mlfleet_no_such_module',)); "
        "missing = [m for m in e.PRELOAD_MODULES if m not in sys.modules]; "
        "print(failed, missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['mlfleet_no_such_module'] []"
    assert "could not preload mlfleet_no_such_module" in out.stdout + out.stderr  # Airflow logs to stdout
