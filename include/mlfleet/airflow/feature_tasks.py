"""feature_pipeline's tasks: the interval, `feast apply`, where the Spark job runs, materialize."""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from mlfleet.airflow.assets import FEATURES_ASSET
from mlfleet.airflow.failures import fail_without_retry
from mlfleet.config import get_settings
from mlfleet.etl.interval import feature_interval

# MLFLEET_ETL_BACKEND -> the first task of its path.
ETL_PATHS = {"spark_local": "job_args", "emr_serverless": "emr_job_runs"}


@task
def interval(params: dict[str, Any] | None = None, data_interval_start: Any = None,
             data_interval_end: Any = None) -> dict[str, str]:
    return feature_interval(params or {}, data_interval_start, data_interval_end)


@task
def feast_apply() -> list[str]:
    from mlfleet.features import repository

    return repository.apply(get_settings())


@task.branch
def etl_backend() -> str:
    """Where the feature job runs (MLFLEET_ETL_BACKEND), read when the run gets there."""
    return ETL_PATHS[get_settings().etl_backend]


@task
def job_args(days: dict[str, str]) -> list[str]:
    """The local SparkSubmitOperator's application arguments."""
    from mlfleet.etl.arguments import feature_job_arguments

    settings = get_settings()
    return feature_job_arguments(settings, days, feature_repo=str(settings.feature_repo), home=str(settings.home_dir))


@task
def emr_job_runs(days: dict[str, str], run_id: str | None = None) -> list[dict[str, Any]]:
    """Stage the feature job and the Feast repo, then the one EmrServerlessStartJobOperator request.

    A list, for `expand_kwargs`: every operator argument then comes from run-time settings. A
    configuration error fails the task without retries (a retry cannot fix it).
    """
    from mlfleet.backends import emr

    settings = get_settings()
    with fail_without_retry("configuration"):
        code = emr.stage_code(settings)
        return [emr.job_run_request(settings=settings, interval=days, run_id=str(run_id), **code)]


@task(outlets=[FEATURES_ASSET], trigger_rule="none_failed_min_one_success")
def materialize(days: dict[str, str], outlet_events: Any = None) -> dict[str, Any]:
    """The newest row per customer of the interval to the online store; the asset event carries the interval."""
    from mlfleet.etl.interval import materialize_window
    from mlfleet.features import repository

    start, end = materialize_window(days)
    views = repository.materialize(get_settings(), start=start, end=end)
    outlet_events[FEATURES_ASSET].extra = {"start": days["start"], "end": days["end"]}
    return {**days, "views": views}
