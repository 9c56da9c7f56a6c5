"""drift_monitor's task: check every champion, one retrain conf per drifted model."""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from mlfleet.config import get_settings


@task
def check_drift() -> list[dict[str, Any]]:
    from mlfleet.drift.monitor import check_all

    return check_all(get_settings())
