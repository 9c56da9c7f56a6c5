"""What the DAGs' tasks do, with Airflow's context unpacked: one function per task.

DAG files stay wiring only; these functions import the heavy libraries at run time and turn a
spec error into `AirflowFailException` (fail now, no retry: a retry cannot fix a bad spec).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from airflow.sdk import Asset

from mlfleet.config import PROJECT_ROOT, get_settings

SWEEP_MAX_ROUNDS = 6
# Updated by feature_pipeline's materialize task; schedules drift_monitor.
FEATURES_ASSET = Asset("mlfleet_features")


@contextmanager
def spec_errors_fail_the_task() -> Iterator[None]:
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.spec import SpecError

    try:
        yield
    except SpecError as err:
        raise AirflowFailException(f"invalid spec: {err}") from None


def resolve_spec_source(spec: Any) -> Any:
    """A spec param is an object, or a path (relative paths also tried from the project root)."""
    if isinstance(spec, str) and "\n" not in spec and not Path(spec).is_file() and (PROJECT_ROOT / spec).is_file():
        return str(PROJECT_ROOT / spec)
    return spec


def prepare_sweep(spec: Any, dag_run_id: str) -> dict[str, Any]:
    from mlfleet import sweep

    with spec_errors_fail_the_task():
        return sweep.prepare(resolve_spec_source(spec), settings=get_settings(),
                             run_id=sweep.run_id_from_airflow(dag_run_id), round_limit=SWEEP_MAX_ROUNDS)


def propose(context: dict[str, Any], round_index: int) -> list[dict[str, Any]]:
    from mlfleet import sweep

    return sweep.propose(context, round_index=round_index, settings=get_settings())


def run_batch(context: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    from mlfleet import sweep

    return sweep.run_batch(context, batch, settings=get_settings())


def record(context: dict[str, Any]) -> int:
    from mlfleet import sweep

    return sweep.record(context, settings=get_settings())


def local_batches(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlfleet import dispatch

    return dispatch.local_batches(context, batches)


def sagemaker_jobs(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlfleet import dispatch

    return dispatch.sagemaker_jobs(context, batches, settings=get_settings())


def kubernetes_pods(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlfleet import dispatch

    return dispatch.kubernetes_pods(context, batches, settings=get_settings())


def finalize(context: dict[str, Any]) -> dict[str, Any]:
    from mlfleet import sweep

    board = sweep.finalize(context, settings=get_settings())
    return {"results_uri": board["results_uri"], "best": board["best"], "n_trials": len(board["trials"]),
            "registered_model": board.get("registered_model")}


# feature_pipeline -------------------------------------------------------------------------

def feature_interval(params: dict[str, Any], data_interval_start: datetime, data_interval_end: datetime) -> dict[str, str]:
    """The days to compute: the params' start/end when given (backfills), else the run's interval."""
    start = params.get("start") or data_interval_start.date().isoformat()
    end = params.get("end") or (data_interval_end - timedelta(days=1)).date().isoformat()
    if date.fromisoformat(end) < date.fromisoformat(start):
        raise ValueError(f"params.end {end} is before params.start {start}")
    return {"start": start, "end": end}


def feast_apply() -> list[str]:
    from mlfleet import features

    return features.apply(get_settings())


def spark_job_args(interval: dict[str, str]) -> list[str]:
    from mlfleet.etl.arguments import feature_job_arguments

    settings = get_settings()
    return feature_job_arguments(settings, interval, feature_repo=str(settings.feature_repo),
                                 home=str(settings.home_dir))


def etl_backend() -> str:
    """Where the feature job runs (MLFLEET_ETL_BACKEND), read when the run gets there."""
    return get_settings().etl_backend


def emr_job_runs(interval: dict[str, str], dag_run_id: str) -> list[dict[str, Any]]:
    """Stage the feature job and the Feast repo, then the one EmrServerlessStartJobOperator request.

    A list, for `expand_kwargs`: every operator argument then comes from run-time settings. A
    configuration error fails the task without retries (a retry cannot fix it).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.backends import emr
    from mlfleet.spec import SpecError

    settings = get_settings()
    try:
        code = emr.stage_code(settings)
        return [emr.job_run_request(settings=settings, interval=interval, run_id=dag_run_id, **code)]
    except SpecError as err:
        raise AirflowFailException(f"invalid configuration: {err}") from None


def materialize(interval: dict[str, str]) -> dict[str, Any]:
    from mlfleet import features

    start = datetime.fromisoformat(interval["start"]).replace(tzinfo=timezone.utc)
    # A day's rows are stamped at the next midnight: include the day after the interval's last.
    end = datetime.fromisoformat(interval["end"]).replace(tzinfo=timezone.utc) + timedelta(days=1, seconds=1)
    views = features.materialize(get_settings(), start=start, end=end)
    return {**interval, "views": views}


# drift_monitor ------------------------------------------------------------------------------

def check_drift() -> list[dict[str, Any]]:
    from mlfleet import monitoring

    return monitoring.check_all(get_settings())


# retrain --------------------------------------------------------------------------------------

def prepare_retrain(conf: dict[str, Any], dag_run_id: str) -> dict[str, Any]:
    from mlfleet import retraining, sweep

    with spec_errors_fail_the_task():
        return retraining.prepare(conf, settings=get_settings(), run_id=sweep.run_id_from_airflow(dag_run_id))


def decide(context: dict[str, Any]) -> dict[str, Any]:
    from mlfleet import retraining

    return retraining.decide(context, settings=get_settings())
