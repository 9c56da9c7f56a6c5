"""drift_monitor's task: check every champion, one retrain trigger per drifted model."""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from mlfleet.config import get_settings


@task
def check_drift(dag_run: Any = None) -> list[dict[str, Any]]:
    """Each drifted model's retrain `conf` and `trigger_run_id`, named after this run (see `retrain_triggers`)."""
    from mlfleet.drift.monitor import MonitorRun, retrain_triggers

    run = MonitorRun(run_id=dag_run.run_id, started=dag_run.run_after)
    return retrain_triggers(get_settings(), run)
