"""The feature job on EMR Serverless, by configuration only, against a moto server that runs it.

moto only records a StartJobRun; the stand-in of emr_runtime.py runs exactly the request received
(the staged script, the unpacked repo zip, the arguments unchanged) under spark-submit, with S3
reached through Hadoop's ViewFs over a mirror synced with the server. So these tests check what
reaches the service and also what the job does with it: the registry Feast applied to S3, the
offline tables it writes there, and that materialize and training sets read them back, giving the
same features as the local Spark path on the same raw events.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlfleet.backends import emr

# Feast settings and the AWS connection are exported to os.environ: undone after each test.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_environment")]

DAY = {"start": "2026-09-01", "end": "2026-09-01"}
RAW_START, RAW_DAYS = "2026-08-01", 42  # through 2026-09-11
RUN_ID = "scheduled__2026-09-01T00:00:00+00:00"
ROLE = "arn:aws:iam::123456789012:role/mlfleet-emr"
VENV = ("--conf spark.archives=s3://mlfleet-test/envs/pyspark_venv.tar.gz#environment "
        "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python")


@pytest.fixture
def application(aws, mlfleet_home, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh EMR Serverless application (boto3: the provider's create operator waits for a
    CREATED state moto never reports), and the settings that select it, on a prefix of its own."""
    created = aws.client("emr-serverless").create_application(
        name=f"mlfleet-{uuid.uuid4().hex[:8]}", releaseLabel="emr-7.5.0", type="SPARK")
    for name, value in {"MLFLEET_ETL_BACKEND": "emr_serverless", "MLFLEET_EMR_APPLICATION_ID": created["applicationId"],
                        "MLFLEET_EMR_EXECUTION_ROLE_ARN": ROLE, "MLFLEET_EMR_SPARK_SUBMIT_PARAMETERS": VENV,
                        "MLFLEET_EMR_CHECK_INTERVAL": "2",
                        "MLFLEET_OBJECT_STORE_URI": f"s3://{aws.bucket}/emr-{uuid.uuid4().hex[:8]}"}.items():
        monkeypatch.setenv(name, value)
    return created["applicationId"]


def write_raw_events(root: Path) -> Path:
    """The same small raw zone for every test (60 customers, 42 days), hive-partitioned under `root`."""
    from mlfleet.demo import events

    raw = events.generate_events(customers=60, start=pd.Timestamp(RAW_START).date(), days=RAW_DAYS, seed=3)
    events.write_raw_zone(raw, root)
    return root


def upload_raw_events(aws, settings: Any, local: Path) -> tuple[str, str]:
    """Raw events land in the object store's raw zone (upstream's job in production)."""
    bucket, _, prefix = settings.object_store_uri.removeprefix("s3://").partition("/")
    for path in sorted(local.rglob("*.parquet")):
        aws.client("s3").upload_file(str(path), bucket, f"{prefix}/raw/events/{path.relative_to(local).as_posix()}")
    return bucket, prefix


@pytest.fixture
def emr_ready(aws, application, mlfleet_home) -> dict[str, Any]:
    """What the DAG does before the job runs: raw events in the object store, the repo applied."""
    from mlfleet.features import repository as features
    from mlfleet.config import get_settings

    settings = get_settings()
    bucket, prefix = upload_raw_events(aws, settings, write_raw_events(mlfleet_home / "upload"))
    features.apply(settings)
    return {"settings": settings, "bucket": bucket, "prefix": prefix}


def keys(aws, bucket: str, prefix: str) -> list[str]:
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


class TaskInstanceStub:
    """The one thing the operator does with its context outside Airflow: push its log links."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def build_request(run_id: str = RUN_ID) -> dict[str, Any]:
    """What the DAG's emr_job_runs task hands the mapped operator (stages the code too)."""
    from mlfleet.airflow.feature_tasks import emr_job_runs

    [request] = emr_job_runs.function(DAY, run_id)
    return request


def operator(request: dict[str, Any], **overrides: Any) -> Any:
    """The provider's operator as the DAG builds it, recording the StartJobRun parameters it sends."""
    from mlfleet.backends.emr_operator import FeatureJobRunOperator

    op = FeatureJobRunOperator(task_id="compute_features_emr", **{**request, **overrides})
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


def assert_received(run: dict[str, Any], request: dict[str, Any], state: str = "SUCCESS") -> None:
    """The service's record of the job run is the request that was built."""
    assert run["state"] == state, run.get("stateDetails")
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


def test_operator_runs_the_built_request_and_a_retry_reattaches(aws, emr_ready, application) -> None:
    """The operator sends exactly the request built, waits while the job runs, and the job writes
    each view's day to the offline zone on S3. A retried task rebuilds the same request, client
    token included, and the service answers it with the job run it already started."""
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
    arguments = spark["entryPointArguments"]
    root = emr_ready["settings"].object_store_uri
    assert arguments[arguments.index("--raw") + 1] == f"{root}/raw/events"
    assert arguments[arguments.index("--feature-root") + 1] == root
    assert spark["sparkSubmitParameters"].startswith(f"--conf spark.archives={root}/code/")
    assert "#feature_repo,s3://mlfleet-test/envs/pyspark_venv.tar.gz#environment " in spark["sparkSubmitParameters"]
    assert ti.xcom["emr_serverless_s3_logs"]["log_uri"] == f"{root}/logs/emr/"

    bucket, prefix = emr_ready["bucket"], emr_ready["prefix"]
    written = keys(aws, bucket, f"{prefix}/offline/")
    for view in ("customer_spend", "customer_channels"):
        day = [k for k in written if k.startswith(f"{prefix}/offline/{view}/feature_date=2026-09-01/")]
        assert any(k.endswith(".parquet") for k in day), written
        stats = [k for k in written if k.startswith(f"{prefix}/offline/_stats/{view}/feature_date=2026-09-01/")]
        assert any(k.endswith(".parquet") for k in stats), written  # the drift check's statistics, on S3 too
    assert keys(aws, bucket, f"{prefix}/logs/emr/applications/{application}/jobs/{job_id}/SPARK_DRIVER/")

    retry = build_request()
    assert retry == request
    again = operator(retry, deferrable=False)
    assert again.execute({"ti": TaskInstanceStub()}) == job_id
    assert again.sent == op.sent
    assert len(job_runs(aws, application)) == 1

    backfill = build_request(run_id="manual__2026-09-20T08:00:00+00:00")  # the same days, a new DAG run
    assert backfill["client_request_token"] != request["client_request_token"]
    assert {k: v for k, v in backfill.items() if k != "client_request_token"} == \
           {k: v for k, v in request.items() if k != "client_request_token"}


def test_deferred_operator_reports_the_failed_job_run_through_the_trigger(aws, application) -> None:
    """No raw events on S3: the job run fails on the service. The deferred operator's trigger polls
    the server until then, and the task fails with the service's reason."""
    from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

    from mlfleet.features import repository as features
    from mlfleet.config import get_settings

    features.apply(get_settings())
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
    assert event["status"] != "success", event
    [run] = job_runs(aws, application)
    assert_received(run, request, state="FAILED")
    assert "PATH_NOT_FOUND" in run["stateDetails"] and "/raw/events" in run["stateDetails"]
    # The provider's own execute_complete dies on the event it gets (amazon 9.39.0); when this stops
    # raising KeyError, FeatureJobRunOperator can go.
    from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator

    with pytest.raises(KeyError, match="job_details"):
        EmrServerlessStartJobOperator.execute_complete(op, {}, event)
    # Ours fails the task with the service's reason.
    with pytest.raises(AirflowException, match=r"^Serverless Job failed: FAILED - .*PATH_NOT_FOUND"):
        op.execute_complete({}, event)


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


def sorted_frame(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    frame = frame.assign(**{c: frame[c].astype(str) for c in frame.columns if str(frame[c].dtype) == "category"})
    return frame.sort_values(by).reset_index(drop=True)[sorted(frame.columns)]


def feature_outputs(settings: Any) -> dict[str, pd.DataFrame]:
    """What the pipeline leaves for training and serving, read back through the feature root."""
    from mlfleet.features import repository, tables, training_sets

    fs = repository.store(settings)
    out = {}
    for view in repository.online_views(fs):
        out[view.name] = sorted_frame(tables.read_parquet(view.batch_source.path),
                                      ["customer_id", "feature_date"])
    labels = training_sets.read_labels(settings)
    out["labels"] = sorted_frame(labels, ["event_timestamp", "customer_id"])
    names = [f"{v.name}:{f.name}" for v in repository.online_views(fs) for f in v.features]
    online = fs.get_online_features(features=names, entity_rows=[{"customer_id": c} for c in range(1, 61)])
    out["online"] = sorted_frame(online.to_df(), ["customer_id"])
    entity_df = labels[["customer_id", "event_timestamp", "churned"]]
    out["training_set"] = sorted_frame(training_sets.training_set(settings, "churn_v1", entity_df=entity_df),
                                       ["event_timestamp", "customer_id"])
    # the drift check's window, merged from the per-day statistics the job wrote beside the tables
    from mlfleet.drift.window import recent_statistics

    window, _ = recent_statistics(settings, features=[f.name for v in repository.online_views(fs) for f in v.features],
                                  days=settings.drift_window_days)
    out["drift_statistics"] = pd.DataFrame([{"feature": f, "bucket": b, "count": c, "low": lo, "high": hi}
                                            for f, s in sorted(window.items())
                                            for b, c, lo, hi in zip(s.bucket, s.count, s.low, s.high)])
    return out


def test_feature_pipeline_on_emr_gives_what_local_spark_gives(aws, application, feature_dag, tmp_path,
                                                             monkeypatch) -> None:
    """The whole DAG, once with local Spark and once on EMR Serverless (deferred: dag.test runs the
    trigger against the server), over the same raw events and days. On EMR the Feast registry and
    every table live on S3 and nothing is written under the worker's offline zone, yet the
    offline tables, labels, online features and a point-in-time training set are the same."""
    from mlfleet.features import tables
    from mlfleet.config import get_settings

    conf = {"start": RAW_START, "end": "2026-09-11"}
    local_home = tmp_path / "local"
    monkeypatch.setenv("MLFLEET_HOME", str(local_home))
    monkeypatch.setenv("MLFLEET_ETL_BACKEND", "spark_local")
    write_raw_events(local_home / "raw" / "events")
    states = run_until(feature_dag, ["materialize"], conf)
    assert states["compute_features"] == "success" and states["compute_features_emr"] == "skipped", states
    local = feature_outputs(get_settings())

    emr_home = tmp_path / "emr"
    monkeypatch.setenv("MLFLEET_HOME", str(emr_home))
    monkeypatch.setenv("MLFLEET_ETL_BACKEND", "emr_serverless")
    settings = get_settings()
    bucket, prefix = upload_raw_events(aws, settings, write_raw_events(tmp_path / "upload"))
    states = run_until(feature_dag, ["materialize"], conf)
    assert states == {"interval": "success", "feast_apply": "success", "etl_backend": "success",
                      "job_args": "skipped", "compute_features": "skipped", "emr_job_runs": "success",
                      "compute_features_emr": "success", "materialize": "success"}
    [run] = job_runs(aws, application)
    assert run["state"] == "SUCCESS" and run["name"] == f"mlfleet-features-{RAW_START}-2026-09-11"

    assert keys(aws, bucket, f"{prefix}/feast/registry.db") == [f"{prefix}/feast/registry.db"]
    assert not (emr_home / "feast" / "registry.db").exists() and not (emr_home / "offline").exists()
    assert tables.parquet_files(f"{settings.object_store_uri}/offline/customer_spend")
    remote = feature_outputs(settings)
    assert remote.keys() == local.keys()
    for name, frame in local.items():
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(remote[name], frame, obj=name)


def test_dag_keeps_the_local_spark_path_by_default(mlfleet_home, feature_dag, monkeypatch) -> None:
    """No EMR setting at all: the branch takes the SparkSubmit path (cut before Spark starts)."""
    monkeypatch.delenv("MLFLEET_ETL_BACKEND", raising=False)
    states = run_until(feature_dag, ["job_args", "emr_job_runs"], DAY)
    assert states == {"interval": "success", "feast_apply": "success", "etl_backend": "success",
                      "job_args": "success", "emr_job_runs": "skipped"}
