"""The feature job on EMR Serverless, by configuration only, against a moto server.

moto does not run Spark: StartJobRun records the request and reports the job run SUCCESS at once,
and nothing is written to the offline zone. So these tests check what reaches the service (the
staged script byte for byte, the StartJobRun request the operator sends, the operator's sync and
deferrable waits) and where the DAG routes a run; they never claim the features were computed.
The Spark side is the same script the local path runs for real (test_feature_view_flow.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import pytest

from mlfleet.backends import emr

DAY = {"start": "2026-09-01", "end": "2026-09-01"}
RUN_ID = "scheduled__2026-09-01T00:00:00+00:00"
ROLE = "arn:aws:iam::123456789012:role/mlfleet-emr"
VENV = ("--conf spark.archives=s3://mlfleet-test/envs/pyspark_venv.tar.gz#environment "
        "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python")


@pytest.fixture
def application(aws, mlfleet_home, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh EMR Serverless application (boto3: the provider's create operator waits for a
    CREATED state moto never reports), and the settings that select it."""
    created = aws.client("emr-serverless").create_application(
        name=f"mlfleet-{uuid.uuid4().hex[:8]}", releaseLabel="emr-7.5.0", type="SPARK")
    for name, value in {"MLFLEET_ETL_BACKEND": "emr_serverless", "MLFLEET_EMR_APPLICATION_ID": created["applicationId"],
                        "MLFLEET_EMR_EXECUTION_ROLE_ARN": ROLE, "MLFLEET_EMR_SPARK_SUBMIT_PARAMETERS": VENV}.items():
        monkeypatch.setenv(name, value)
    return created["applicationId"]


class TaskInstanceStub:
    """The one thing the operator does with its context outside Airflow: push its log links."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def build_request(run_id: str = RUN_ID) -> dict[str, Any]:
    """What the DAG's emr_job_runs task hands the mapped operator (stages the code too)."""
    from mlfleet.airflow_tasks import emr_job_runs

    [request] = emr_job_runs(DAY, run_id)
    return request


def operator(request: dict[str, Any], **overrides: Any) -> Any:
    """The provider's operator as the DAG builds it, recording the StartJobRun parameters it sends."""
    from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator

    op = EmrServerlessStartJobOperator(task_id="compute_features_emr", **{**request, **overrides})
    op.sent = []
    op.hook.conn.meta.events.register("provide-client-params.emr-serverless.StartJobRun",
                                      lambda params, **_: op.sent.append(params))
    return op


def expected_params(request: dict[str, Any]) -> dict[str, Any]:
    return {"clientToken": request["client_request_token"], "applicationId": request["application_id"],
            "executionRoleArn": request["execution_role_arn"], "jobDriver": request["job_driver"],
            "name": request["name"], "tags": request["config"]["tags"],
            "configurationOverrides": request["configuration_overrides"]}


def job_runs(aws, application: str) -> list[dict[str, Any]]:
    client = aws.client("emr-serverless")
    return [client.get_job_run(applicationId=application, jobRunId=run["id"])["jobRun"]
            for run in client.list_job_runs(applicationId=application)["jobRuns"]]


def assert_received(run: dict[str, Any], request: dict[str, Any]) -> None:
    """The service's record of the job run is the request that was built."""
    assert run["state"] == "SUCCESS"
    assert run["name"] == request["name"]
    assert run["executionRole"] == request["execution_role_arn"]
    assert run["jobDriver"] == request["job_driver"]
    assert run["configurationOverrides"] == request["configuration_overrides"]
    assert run["tags"] == request["config"]["tags"]


def test_staged_code_is_the_unchanged_script_and_the_repo_zip(aws, application) -> None:
    from mlfleet.config import get_settings

    settings = get_settings()
    code = emr.stage_code(settings)
    s3 = aws.client("s3")

    def fetched(uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    script = emr.FEATURE_JOB.read_bytes()
    assert fetched(code["script_uri"]) == script
    assert code["script_uri"] == f"{settings.object_store_uri}/code/{hashlib.sha256(script).hexdigest()}/feature_job.py"
    archive = emr.repo_archive(settings.feature_repo)
    assert fetched(code["repo_uri"]) == archive
    assert code["repo_uri"].endswith(f"/code/{hashlib.sha256(archive).hexdigest()}/feature_repo.zip")

    before = s3.head_object(Bucket=aws.bucket, Key=code["script_uri"].split(f"{aws.bucket}/", 1)[1])["LastModified"]
    assert emr.stage_code(settings) == code  # content-addressed: staged once
    after = s3.head_object(Bucket=aws.bucket, Key=code["script_uri"].split(f"{aws.bucket}/", 1)[1])["LastModified"]
    assert after == before


def test_operator_sends_exactly_the_built_request_and_waits(aws, application) -> None:
    request = build_request()
    assert request["application_id"] == application and request["deferrable"] is True  # the setting's default
    op = operator(request, deferrable=False)
    ti = TaskInstanceStub()
    job_id = op.execute({"ti": ti})

    assert op.sent == [expected_params(request)]
    [run] = job_runs(aws, application)
    assert run["jobRunId"] == job_id
    assert_received(run, request)
    spark = run["jobDriver"]["sparkSubmit"]
    assert spark["entryPoint"] == request["job_driver"]["sparkSubmit"]["entryPoint"]
    arguments = spark["entryPointArguments"]
    assert arguments[arguments.index("--raw") + 1] == "s3://mlfleet-test/mlfleet/raw/events"
    assert spark["sparkSubmitParameters"].startswith("--conf spark.archives=s3://mlfleet-test/mlfleet/code/")
    assert "#feature_repo,s3://mlfleet-test/envs/pyspark_venv.tar.gz#environment " in spark["sparkSubmitParameters"]
    assert ti.xcom["emr_serverless_s3_logs"]["log_uri"] == "s3://mlfleet-test/mlfleet/logs/emr/"


def test_a_retry_sends_the_same_client_token(aws, application) -> None:
    """A retried task rebuilds the same request, token included, so the service can answer it with
    the job run it already started. moto does not implement clientToken idempotency: it records a
    second run. That is asserted as moto's behaviour, not as ours."""
    first = build_request()
    op = operator(first, deferrable=False)
    op.execute({"ti": TaskInstanceStub()})
    retry = build_request()
    assert retry == first
    again = operator(retry, deferrable=False)
    again.execute({"ti": TaskInstanceStub()})
    assert again.sent == op.sent == [expected_params(first)]

    runs = job_runs(aws, application)
    assert len(runs) == 2, "moto now deduplicates by clientToken: assert a single job run here"
    for run in runs:
        assert_received(run, first)

    backfill = build_request(run_id="manual__2026-09-20T08:00:00+00:00")  # the same days, a new DAG run
    assert backfill["client_request_token"] != first["client_request_token"]
    assert {k: v for k, v in backfill.items() if k != "client_request_token"} == \
           {k: v for k, v in first.items() if k != "client_request_token"}


def test_deferrable_operator_waits_on_the_trigger_against_the_server(aws, application) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    request = build_request(run_id="manual__2026-09-01T12:00:00+00:00")
    op = operator(request)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": TaskInstanceStub()})
    assert op.sent == [expected_params(request)]
    assert deferred.value.method_name == "execute_complete"
    trigger = deferred.value.trigger

    async def events() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]  # to its end, as the triggerer would

    [event] = asyncio.run(events())
    assert event["status"] == "success"
    job_id = op.execute_complete({}, event)
    [run] = job_runs(aws, application)
    assert run["jobRunId"] == job_id
    assert_received(run, request)


def test_missing_application_fails_before_anything_is_staged(aws, mlfleet_home, monkeypatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    prefix = f"mlfleet-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", f"s3://{aws.bucket}/{prefix}")
    monkeypatch.setenv("MLFLEET_ETL_BACKEND", "emr_serverless")
    monkeypatch.setenv("MLFLEET_EMR_EXECUTION_ROLE_ARN", ROLE)
    monkeypatch.delenv("MLFLEET_EMR_APPLICATION_ID", raising=False)
    with pytest.raises(AirflowFailException, match=r"^invalid configuration: etl_backend: emr_serverless needs an "
                                                   r"application: set MLFLEET_EMR_APPLICATION_ID"):
        build_request()
    assert aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix=prefix)["KeyCount"] == 0


def test_unknown_application_is_the_service_error(aws, application, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    monkeypatch.setenv("MLFLEET_EMR_APPLICATION_ID", "00nosuchapplication")
    with pytest.raises(ClientError, match=r"ResourceNotFoundException.*00nosuchapplication"):
        operator(build_request(), deferrable=False).execute({"ti": TaskInstanceStub()})


def run_until(dag: Any, task_ids: list[str], conf: dict[str, str]) -> dict[str, str]:
    """`dag.test()` of the DAG cut after `task_ids` (with everything upstream): task id -> state."""
    import pandas as pd

    run = dag.partial_subset(task_ids=task_ids, include_upstream=True).test(
        logical_date=pd.Timestamp(conf["end"], tz="UTC"), run_conf=conf)
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.fixture(scope="module")
def feature_dag(airflow_db) -> Any:
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "feature_pipeline.py")).dags
    return dags["feature_pipeline"]


def test_dag_routes_a_run_to_emr_serverless_by_configuration(aws, application, feature_dag) -> None:
    """The run goes to EmrServerlessStartJobOperator (deferred, the trigger run in-process by
    dag.test) and skips SparkSubmit. The run is cut after the compute tasks: materialize would
    read offline tables that the real EMR job writes and moto's never does."""
    materialize = feature_dag.get_task("materialize")
    assert materialize.trigger_rule == "none_failed_min_one_success"
    assert {"compute_features", "compute_features_emr"} <= materialize.upstream_task_ids

    states = run_until(feature_dag, ["compute_features", "compute_features_emr"], DAY)
    assert states == {"interval": "success", "feast_apply": "success", "etl_backend": "success",
                      "job_args": "skipped", "compute_features": "skipped",
                      "emr_job_runs": "success", "compute_features_emr": "success"}
    [run] = job_runs(aws, application)
    assert run["name"] == "mlfleet-features-2026-09-01-2026-09-01"
    arguments = run["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    assert arguments[:4] == ["--start", "2026-09-01", "--end", "2026-09-01"]


def test_dag_keeps_the_local_spark_path_by_default(mlfleet_home, feature_dag, monkeypatch) -> None:
    """No EMR setting at all: the branch takes the SparkSubmit path (cut before Spark starts)."""
    monkeypatch.delenv("MLFLEET_ETL_BACKEND", raising=False)
    states = run_until(feature_dag, ["job_args", "emr_job_runs"], DAY)
    assert states == {"interval": "success", "feast_apply": "success", "etl_backend": "success",
                      "job_args": "success", "emr_job_runs": "skipped"}
