"""The preload in Airflow's local settings: which process imports what, with a real `import airflow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfleet.airflow import preload
from mlfleet.devstack.environment import LOCAL_SETTINGS_DIR


@pytest.mark.parametrize("argv,commands,matched", [
    (["airflow", "scheduler", "--skip-serve-logs"], "scheduler", "scheduler"),
    (["/venv/bin/airflow", "celery", "worker", "-q", "trials"], "scheduler, celery  worker", "celery worker"),
    (["airflow", "celery", "flower"], "celery worker", None),
    (["airflow", "celery", "worker"], "celery", "celery"),
    (["airflow", "api-server"], "scheduler,celery worker", None),
    (["airflow", "dags", "test", "scheduler"], "scheduler", None),  # a DAG id is not the command
    (["airflow", "scheduler"], "", None),
    (["airflow"], "scheduler", None),
])
def test_only_the_commands_named_preload(argv: list[str], commands: str, matched: str | None) -> None:
    assert preload.matching_command(argv, commands) == matched


def test_the_list_is_configurable_and_empty_means_nothing() -> None:
    assert preload.preload_modules({}) == preload.PRELOAD_MODULES
    assert preload.preload_modules({preload.MODULES_VAR: " json , csv,,"}) == ("json", "csv")
    assert preload.preload_modules({preload.MODULES_VAR: ""}) == ()


def test_every_default_module_imports_without_airflow_and_a_missing_one_is_skipped() -> None:
    # A fresh interpreter, as the scheduler starts: the local settings run inside `import airflow`,
    # where a module that imports Airflow would find it half-initialised, so none of the list may.
    code = (
        "import sys; from mlfleet.airflow import preload as p; "
        "assert 'mlflow' not in sys.modules; "
        "failed = p.preload(p.PRELOAD_MODULES + ('mlfleet_no_such_module',)); "
        "missing = [m for m in p.PRELOAD_MODULES if m not in sys.modules]; "
        "print(failed, missing, 'airflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['mlfleet_no_such_module'] [] False"
    assert "could not import mlfleet_no_such_module" in out.stderr


# --- through Airflow: the project's airflow_local_settings.py, imported by `import airflow` ------

PROBE = """
import json, sys
sys.argv = {argv!r}  # the command line the process would have
import airflow
import airflow.settings
print(json.dumps({{
    "probed": "mlfleet_probe_ok" in sys.modules,
    "local_settings": sys.modules["airflow_local_settings"].__file__,
    "leaked": hasattr(airflow.settings, "preload_for_this_process"),
}}))
"""


def _import_airflow(tmp_path: Path, *, argv: list[str], preload_var: str | None) -> tuple[dict, str]:
    """`import airflow` in a new interpreter with the project's local settings on its path; (report, stderr)."""
    (tmp_path / "mlfleet_probe_ok.py").write_text("")
    (tmp_path / "mlfleet_probe_broken.py").write_text("raise ImportError('broken on purpose')\n")
    env = {k: v for k, v in os.environ.items() if k != preload.PRELOAD_VAR}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(LOCAL_SETTINGS_DIR), str(tmp_path), env.get("PYTHONPATH", "")]),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        preload.MODULES_VAR: "mlfleet_probe_broken,mlfleet_probe_ok,mlfleet_probe_missing",
    })
    if preload_var is not None:
        env[preload.PRELOAD_VAR] = preload_var
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_the_scheduler_preloads_and_logs_what_failed(tmp_path: Path) -> None:
    report, stderr = _import_airflow(tmp_path, argv=["airflow", "scheduler", "--skip-serve-logs"],
                                     preload_var="scheduler")
    assert report == {"probed": True, "local_settings": str(LOCAL_SETTINGS_DIR / "airflow_local_settings.py"),
                      "leaked": False}
    assert "could not import mlfleet_probe_broken (broken on purpose)" in stderr
    assert "could not import mlfleet_probe_missing" in stderr
    assert "mlfleet preload: imported 1 module(s)" in stderr and "for `airflow scheduler`" in stderr


@pytest.mark.parametrize("argv,preload_var", [
    (["airflow", "scheduler"], None),  # MLFLEET_PRELOAD unset
    (["airflow", "scheduler"], ""),
    (["airflow", "api-server"], "scheduler"),
    (["airflow", "dag-processor"], "scheduler,celery worker"),
])
def test_other_processes_import_nothing(tmp_path: Path, argv: list[str], preload_var: str | None) -> None:
    report, stderr = _import_airflow(tmp_path, argv=argv, preload_var=preload_var)
    assert report["probed"] is False
    assert "mlfleet preload" not in stderr
