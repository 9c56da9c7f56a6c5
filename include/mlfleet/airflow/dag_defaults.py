"""What every mlfleet DAG shares: no catch-up, owner and retries in default_args, the tags."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from airflow.sdk import dag

START_DATE = datetime(2026, 1, 1)


def mlfleet_dag(*, dag_id: str, doc_md: str | None, schedule: Any, tag: str, max_active_runs: int = 1,
                start_date: datetime = START_DATE, owner: str = "ml-platform", retries: int = 1,
                retry_delay: timedelta = timedelta(seconds=10), params: dict[str, Any] | None = None) -> Callable[..., Any]:
    """`@dag` with mlfleet's defaults; a DAG file names only what is its own."""
    return dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=max_active_runs,
        tags=["mlfleet", tag],
        doc_md=doc_md,
        default_args={"owner": owner, "retries": retries, "retry_delay": retry_delay},
        params=params or {},
    )
