"""The EMR Serverless request of one feature-job interval: a snapshot, the service model's own
constraints (botocore), the unchanged script's argument parser, and errors that name the setting."""

from __future__ import annotations

import re
import shutil
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import botocore.session
import botocore.validate
import pytest

from mlfleet.backends import emr
from mlfleet.config import PROJECT_ROOT, Settings
from mlfleet.etl import feature_job
from mlfleet.spec import SpecError

ROOT = "s3://bucket/prefix"
APP = "00fabc123def4567"
ROLE = "arn:aws:iam::123456789012:role/mlfleet-emr"
VENV = ("--conf spark.archives=s3://bucket/envs/pyspark_venv.tar.gz#environment "
        "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python "
        "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python")
SCRIPT_URI = f"{ROOT}/code/{'a' * 64}/feature_job.py"
REPO_URI = f"{ROOT}/code/{'b' * 64}/feature_repo.zip"
DAY = {"start": "2026-09-01", "end": "2026-09-01"}
RUN_ID = "scheduled__2026-09-01T00:00:00+00:00"


def emr_settings(**changes: Any) -> Settings:
    values = {"object_store_uri": ROOT, "emr_application_id": APP, "emr_execution_role_arn": ROLE,
              "emr_spark_submit_parameters": VENV, "etl_backend": "emr_serverless", **changes}
    return Settings(**values)


def request_for(settings: Settings | None = None, *, interval: dict[str, str] = DAY, run_id: str = RUN_ID,
                script_uri: str = SCRIPT_URI, repo_uri: str = REPO_URI) -> dict[str, Any]:
    return emr.job_run_request(settings=settings or emr_settings(), interval=interval, script_uri=script_uri,
                               repo_uri=repo_uri, run_id=run_id)


def start_job_run_params(request: dict[str, Any]) -> dict[str, Any]:
    """What EmrServerlessStartJobOperator.execute sends to StartJobRun for these arguments."""
    return {"clientToken": request["client_request_token"], "applicationId": request["application_id"],
            "executionRoleArn": request["execution_role_arn"], "jobDriver": request["job_driver"],
            "name": request["name"], **request["config"],
            "configurationOverrides": request["configuration_overrides"]}


def test_request_snapshot() -> None:
    request = request_for()
    token = request.pop("client_request_token")
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert request == {
        "application_id": APP,
        "execution_role_arn": ROLE,
        "job_driver": {"sparkSubmit": {
            "entryPoint": SCRIPT_URI,
            "entryPointArguments": [
                "--start", "2026-09-01", "--end", "2026-09-01",
                "--raw", f"{ROOT}/raw/events", "--offline", f"{ROOT}/offline",
                "--feature-repo", "feature_repo", "--feature-root", ROOT,
                "--lookback-days", "28", "--churn-horizon-days", "14",
            ],
            "sparkSubmitParameters": (
                f"--conf spark.archives={REPO_URI}#feature_repo,s3://bucket/envs/pyspark_venv.tar.gz#environment "
                "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python "
                "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"
            ),
        }},
        "configuration_overrides": {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"{ROOT}/logs/emr/"}},
        },
        "name": "mlfleet-features-2026-09-01-2026-09-01",
        "config": {"tags": {"app": "mlfleet", "mlfleet-job": "features",
                            "mlfleet-start": "2026-09-01", "mlfleet-end": "2026-09-01"}},
        "aws_conn_id": "aws_default",
        "region_name": None,
        "deferrable": True,
        "wait_for_completion": True,
        "waiter_delay": 30,
        "waiter_max_attempts": 720,
    }


def test_operator_arguments_from_settings() -> None:
    request = request_for(emr_settings(aws_conn_id="aws_prod", aws_region="eu-west-1", emr_deferrable=False))
    assert (request["aws_conn_id"], request["region_name"], request["deferrable"]) == ("aws_prod", "eu-west-1", False)


def test_start_job_run_is_valid_for_the_service_model() -> None:
    """botocore's ParamValidator checks shapes, types and lengths; the patterns it leaves to the service."""
    operation = botocore.session.get_session().get_service_model("emr-serverless").operation_model("StartJobRun")
    params = start_job_run_params(request_for(interval={"start": "2026-08-01", "end": "2026-09-11"}))
    report = botocore.validate.ParamValidator().validate(params, operation.input_shape)
    assert report.generate_report() == ""
    members = operation.input_shape.members
    for field in ("clientToken", "applicationId", "executionRoleArn", "name"):
        meta = members[field].metadata
        assert meta["min"] <= len(params[field]) <= meta["max"], field
        assert re.fullmatch(meta["pattern"], params[field]), field
    tags = members["tags"]
    for key, value in params["tags"].items():
        assert re.fullmatch(tags.key.metadata["pattern"], key) and len(key) <= tags.key.metadata["max"]
        assert re.fullmatch(tags.value.metadata["pattern"], value) and len(value) <= tags.value.metadata["max"]


def test_entry_point_arguments_parse_with_the_unchanged_script() -> None:
    arguments = request_for(interval={"start": "2026-08-01", "end": "2026-09-11"})["job_driver"]["sparkSubmit"]
    args = feature_job.parse_args(arguments["entryPointArguments"])
    assert (str(args.start), str(args.end)) == ("2026-08-01", "2026-09-11")
    assert (args.raw, args.offline, args.feature_root) == (f"{ROOT}/raw/events", f"{ROOT}/offline", ROOT)
    assert args.home is None  # the worker's MLFLEET_HOME means nothing on the cluster
    assert args.feature_repo == "feature_repo"
    assert f"{REPO_URI}#{args.feature_repo}" in arguments["sparkSubmitParameters"]


def test_same_flags_as_the_local_spark_job_rooted_in_the_object_store(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from mlfleet.airflow.feature_tasks import job_args

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLEET_ETL_LOOKBACK_DAYS", "35")
    local = job_args.function(DAY)
    remote = request_for(emr_settings(etl_lookback_days=35))["job_driver"]["sparkSubmit"]["entryPointArguments"]
    home = local.index("--home")
    assert local[home + 1] == str(tmp_path)
    del local[home:home + 2]
    assert local[::2] == remote[::2]
    for flag, value in (("--raw", "raw/events"), ("--offline", "offline"), ("--feature-root", "")):
        assert local[local.index(flag) + 1] == f"{tmp_path}/{value}".rstrip("/")
        assert remote[remote.index(flag) + 1] == f"{ROOT}/{value}".rstrip("/")
    assert local[local.index("--lookback-days") + 1] == remote[remote.index("--lookback-days") + 1] == "35"


def test_a_request_needs_the_etl_backend_switched_to_emr() -> None:
    """The job's paths follow the feature root, which is the object store only on emr_serverless."""
    with pytest.raises(SpecError, match=r"^etl_backend: EMR Serverless requests need "
                                        r"MLFLEET_ETL_BACKEND=emr_serverless, not 'spark_local'"):
        request_for(emr_settings(etl_backend="spark_local"))


ARCHIVE = f"--conf spark.archives={REPO_URI}#feature_repo"


@pytest.mark.parametrize(("extra", "expected"), [
    ("", ARCHIVE),
    ("--conf spark.executor.memory=4g", f"{ARCHIVE} --conf spark.executor.memory=4g"),
    ("--archives s3://b/env.tar.gz#environment,s3://b/more.zip  --conf spark.executor.cores=2",
     f"{ARCHIVE},s3://b/env.tar.gz#environment,s3://b/more.zip --conf spark.executor.cores=2"),
    ("--archives=s3://b/env.tar.gz#environment", f"{ARCHIVE},s3://b/env.tar.gz#environment"),
])
def test_configured_archives_join_the_repo_archive(extra: str, expected: str) -> None:
    """spark-submit's `--archives` would replace a configured `spark.archives` (the Python
    environment, typically) instead of adding to it: one merged list."""
    assert emr.spark_submit_parameters(REPO_URI, extra) == expected


@pytest.mark.parametrize(("extra", "expected"), [
    ("--conf 'spark.executor.memory=4g' --conf \"spark.driver.cores=2\"",
     f"{ARCHIVE} --conf spark.executor.memory=4g --conf spark.driver.cores=2"),
    ("--archives 's3://b/env.tar.gz#environment,s3://b/more.zip'",
     f"{ARCHIVE},s3://b/env.tar.gz#environment,s3://b/more.zip"),
    ("--conf \"spark.archives=s3://b/env.tar.gz#environment\" --conf spark.executor.cores=2",
     f"{ARCHIVE},s3://b/env.tar.gz#environment --conf spark.executor.cores=2"),
    # `#` starts no comment: an archive's `#alias` is kept, quoted or not
    ("--archives=s3://b/env.tar.gz#environment --conf x=1", f"{ARCHIVE},s3://b/env.tar.gz#environment --conf x=1"),
])
def test_quoted_tokens_are_read_as_a_shell_would(extra: str, expected: str) -> None:
    """The setting is split like a shell command line: quotes group and are dropped; archives still merge."""
    assert emr.spark_submit_parameters(REPO_URI, extra) == expected


@pytest.mark.parametrize(("extra", "token"), [
    ("--conf 'spark.driver.extraJavaOptions=-Dx=1 -Dy=2'", "spark.driver.extraJavaOptions=-Dx=1 -Dy=2"),
    ("--conf spark.executor.memory=4g --archives \"s3://b/my env.tar.gz#environment\"",
     "s3://b/my env.tar.gz#environment"),
    ("--conf spark.app.name=one\\ two", "spark.app.name=one two"),
])
def test_a_token_holding_a_space_is_refused_naming_the_setting(extra: str, token: str) -> None:
    """EMR Serverless splits sparkSubmitParameters on spaces: a quoted space would become two arguments."""
    with pytest.raises(SpecError, match=r"^emr_spark_submit_parameters: ") as err:
        emr.spark_submit_parameters(REPO_URI, extra)
    assert err.value.field == "emr_spark_submit_parameters"
    assert f"{token!r} holds a space" in str(err.value)
    # and so is the whole request built from the setting, before anything is staged or sent
    with pytest.raises(SpecError, match=r"^emr_spark_submit_parameters: .* holds a space"):
        request_for(emr_settings(emr_spark_submit_parameters=extra))


def test_an_unbalanced_quote_is_refused_naming_the_setting() -> None:
    with pytest.raises(SpecError, match=r"^emr_spark_submit_parameters: .* does not split as a shell would: "
                                        r"No closing quotation"):
        emr.spark_submit_parameters(REPO_URI, "--conf 'spark.executor.memory=4g")


def test_client_token_is_the_same_for_a_retry_and_new_for_anything_else() -> None:
    token = request_for()["client_request_token"]
    assert request_for()["client_request_token"] == token
    # Airflow-side knobs do not change what the service is asked to run
    assert request_for(emr_settings(emr_deferrable=False, aws_conn_id="other"))["client_request_token"] == token
    others = [
        request_for(run_id="manual__2026-09-02T10:00:00+00:00"),  # a backfill of the same days recomputes
        request_for(interval={"start": "2026-09-02", "end": "2026-09-02"}),
        request_for(script_uri=f"{ROOT}/code/{'c' * 64}/feature_job.py"),  # a changed script
        request_for(repo_uri=f"{ROOT}/code/{'d' * 64}/feature_repo.zip"),  # a new feature view file
        request_for(emr_settings(emr_execution_role_arn="arn:aws:iam::123456789012:role/other")),
        request_for(emr_settings(emr_spark_submit_parameters="")),
    ]
    assert len({token} | {r["client_request_token"] for r in others}) == 1 + len(others)


@pytest.mark.parametrize(("changes", "message"), [
    ({"object_store_uri": None},
     r"etl_backend: emr_serverless needs an object store: set MLFLEET_OBJECT_STORE_URI="),
    ({"emr_application_id": None},
     r"etl_backend: emr_serverless needs an application: set MLFLEET_EMR_APPLICATION_ID"),
    ({"emr_application_id": "App-1"},
     r"emr_application_id: 'App-1' is not an EMR Serverless application id .*MLFLEET_EMR_APPLICATION_ID"),
    ({"emr_execution_role_arn": None},
     r"etl_backend: emr_serverless needs an execution role: set MLFLEET_EMR_EXECUTION_ROLE_ARN="),
    ({"emr_execution_role_arn": "mlfleet-emr"},
     r"emr_execution_role_arn: 'mlfleet-emr' is not an IAM role ARN .*MLFLEET_EMR_EXECUTION_ROLE_ARN"),
])
def test_missing_or_malformed_settings_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        request_for(emr_settings(**changes))


@pytest.mark.parametrize(("interval", "message"), [
    ({"start": "2026-09-02", "end": "2026-09-01"}, r"interval.end 2026-09-01 is before interval.start 2026-09-02"),
    ({"start": "2026-09-01"}, r"needs start and end as YYYY-MM-DD"),
    ({"start": "yesterday", "end": "2026-09-01"}, r"needs start and end as YYYY-MM-DD"),
])
def test_bad_interval(interval: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        request_for(interval=interval)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    repo = tmp_path / "feature_repo"
    shutil.copytree(PROJECT_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def test_repo_archive_depends_only_on_the_files(repo_copy: Path) -> None:
    first = emr.repo_archive(repo_copy)
    (repo_copy / "__pycache__").mkdir()
    (repo_copy / "__pycache__" / "sources.cpython-311.pyc").write_bytes(b"\0cache")
    for path in repo_copy.glob("*.py"):
        path.touch()  # new mtimes
    assert emr.repo_archive(repo_copy) == first
    names = zipfile.ZipFile(BytesIO(first)).namelist()
    assert names == sorted(names) and "feature_store.yaml" in names  # at the root: unpacked as feature_repo/
    assert set(names) == {p.name for p in (PROJECT_ROOT / "feature_repo").glob("*") if p.is_file()}

    (repo_copy / "customer_extra.py").write_text("# a new view\n")
    assert emr.repo_archive(repo_copy) != first


def test_repo_without_feature_store_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"feature_repo: .* has no feature_store.yaml; check MLFLEET_FEATURE_REPO"):
        emr.repo_archive(tmp_path)


def test_check_interval_sets_the_waiter_and_the_attempts_still_cover_the_longest_job() -> None:
    request = request_for(emr_settings(emr_check_interval=7))
    assert request["waiter_delay"] == 7
    assert request["waiter_max_attempts"] * 7 >= emr.MAX_WAIT_SECONDS > (request["waiter_max_attempts"] - 1) * 7
