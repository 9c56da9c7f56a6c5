"""retrain's own tasks: prepare (the champion's search, warm-started) and decide (challenger vs champion)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from mlfleet.airflow.failures import fail_without_retry
from mlfleet.config import get_settings


@task
def prepare(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, str]:
    from mlfleet import retraining
    from mlfleet.sweep import run_id_from_airflow

    with fail_without_retry():
        context = retraining.prepare(params or {}, settings=get_settings(), run_id=run_id_from_airflow(str(run_id)))
    return context.ref()


@task(trigger_rule="none_failed")
def decide(sweep_ref: dict[str, str]) -> dict[str, Any]:
    from mlfleet import retraining
    from mlfleet.sweep import SweepContext

    return retraining.decide(SweepContext.load(sweep_ref), settings=get_settings())
