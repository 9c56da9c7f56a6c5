"""What every mlfleet DAG shares: no catch-up, owner, retries and execution_timeout in default_args, the tags."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from airflow.sdk import dag

from mlfleet.config import Limits

START_DATE = datetime(2026, 1, 1)


def task_timeout() -> timedelta:
    """execution_timeout of every task but a batch: MLFLEET_TASK_TIMEOUT_MINUTES.

    Read when the DAG file is parsed (a task's timeout is part of the DAG), from the limits alone,
    so a bad unrelated setting still fails at run time, naming itself, as before.
    """
    return timedelta(minutes=Limits().task_timeout_minutes)


def batch_timeout() -> timedelta:
    """execution_timeout of a sweep's tasks, run_batch first: the longest batch any spec may ask for
    (MLFLEET_MAX_TIMEOUT_MINUTES, the bound of budget.timeout_minutes) plus a task's own time around
    it (MLFLEET_TASK_TIMEOUT_MINUTES: staging, start-up, waiting for capacity). The batch's own
    timeout, from its spec, stops it sooner on every backend; this is the bound behind it."""
    limits = Limits()
    return timedelta(minutes=limits.max_timeout_minutes + limits.task_timeout_minutes)


def mlfleet_dag(*, dag_id: str, doc_md: str | None, schedule: Any, tag: str, max_active_runs: int = 1,
                start_date: datetime = START_DATE, owner: str = "ml-platform", retries: int = 1,
                retry_delay: timedelta = timedelta(seconds=10), execution_timeout: timedelta | None = None,
                params: dict[str, Any] | None = None) -> Callable[..., Any]:
    """`@dag` with mlfleet's defaults; a DAG file names only what is its own. Every task gets an
    execution_timeout (`task_timeout()` unless the DAG gives its own), so none can hold a slot forever."""
    return dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=max_active_runs,
        tags=["mlfleet", tag],
        doc_md=doc_md,
        default_args={"owner": owner, "retries": retries, "retry_delay": retry_delay,
                      "execution_timeout": execution_timeout or task_timeout()},
        params=params or {},
    )
