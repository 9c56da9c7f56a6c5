"""EMR Serverless ETL backend: the feature job as `EmrServerlessStartJobOperator` arguments.

The same PySpark script the local path runs (`etl/feature_job.py`, shipped unchanged) and a zip of
the Feast repo are staged content-addressed under the object store; `job_run_request` is a pure
function of the settings, the interval, the DAG run and those two URIs, so a retry sends the same
request with the same client token instead of asking the service for a second job run.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import tempfile
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

from mlfleet.backends import naming
from mlfleet.backends.object_store import require_root
from mlfleet.config import Settings
from mlfleet.etl import FEATURE_JOB
from mlfleet.etl.arguments import feature_job_arguments
from mlfleet.spec import SpecError
from mlfleet.storage import bytes_sha256, file_sha256

# `--feature-repo` on the cluster: the directory spark.archives unpacks the repo zip into.
REPO_DIR = "feature_repo"
REPO_ARCHIVE = "feature_repo.zip"
# How long a feature job may run before the provider's waiter gives up and the task fails.
MAX_WAIT_SECONDS = 6 * 3600
# Every entry of the repo zip gets this timestamp, so the same files always give the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_APPLICATION_ID = re.compile(r"^[0-9a-z]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def check_settings(settings: Settings) -> None:
    """What every EMR Serverless request needs from configuration, named when missing or malformed."""
    app, role = settings.emr_application_id, settings.emr_execution_role_arn
    require_root(settings, "emr_serverless", field="etl_backend")
    if settings.etl_backend != "emr_serverless":
        # The job's paths follow the feature root, which is the object store only on this backend.
        raise SpecError("etl_backend", f"EMR Serverless requests need MLFLEET_ETL_BACKEND=emr_serverless, "
                                       f"not {settings.etl_backend!r}")
    if not app:
        raise SpecError("etl_backend", "emr_serverless needs an application: set MLFLEET_EMR_APPLICATION_ID "
                                       "(the id `aws emr-serverless list-applications` shows)")
    if not _APPLICATION_ID.match(app):
        raise SpecError("emr_application_id", f"{app!r} is not an EMR Serverless application id "
                                              "(1-64 lowercase letters and digits); check MLFLEET_EMR_APPLICATION_ID")
    if not role:
        raise SpecError("etl_backend", "emr_serverless needs an execution role: "
                                       "set MLFLEET_EMR_EXECUTION_ROLE_ARN=arn:aws:iam::<account>:role/<name>")
    if not _ROLE_ARN.match(role):
        raise SpecError("emr_execution_role_arn", f"{role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/"
                                                  "<name>); check MLFLEET_EMR_EXECUTION_ROLE_ARN")


def _days(interval: dict[str, str]) -> tuple[str, str]:
    try:
        start, end = date.fromisoformat(interval["start"]), date.fromisoformat(interval["end"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"interval {interval!r}: needs start and end as YYYY-MM-DD ({err})") from None
    if end < start:
        raise ValueError(f"interval.end {end} is before interval.start {start}")
    return start.isoformat(), end.isoformat()


def job_name(interval: dict[str, str]) -> str:
    """`mlfleet-features-<start>-<end>`: what the job run is called in the EMR console."""
    start, end = _days(interval)
    return f"mlfleet-features-{start}-{end}"


def spark_submit_parameters(repo_uri: str, extra: str) -> str:
    """The repo archive plus the configured parameters, as one `spark.archives` list.

    spark-submit's `--archives` replaces a `--conf spark.archives=...` instead of adding to it, so
    the archives the settings name (the Python environment, typically) are merged into ours. The
    settings are read as a shell would split them; the result is space-separated, as EMR takes it.
    """
    archives = [f"{repo_uri}#{REPO_DIR}"]
    rest: list[str] = []
    try:
        tokens = shlex.split(extra)
    except ValueError as err:  # an unbalanced quote: "No closing quotation"
        raise SpecError("emr_spark_submit_parameters", f"{extra!r} does not split as a shell would: {err}") from None
    spaced = [token for token in tokens if any(c.isspace() for c in token)]
    if spaced:
        raise SpecError("emr_spark_submit_parameters", f"{spaced[0]!r} holds a space; EMR Serverless splits "
                                                       "sparkSubmitParameters on spaces, so no value may contain one")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "--archives" and following:
            archives += following.split(",")
            i += 2
        elif token.startswith("--archives="):
            archives += token.removeprefix("--archives=").split(",")
            i += 1
        elif token == "--conf" and following.startswith("spark.archives="):
            archives += following.removeprefix("spark.archives=").split(",")
            i += 2
        else:
            rest.append(token)
            i += 1
    return " ".join(["--conf", "spark.archives=" + ",".join(a for a in archives if a), *rest])


def client_token(run_id: str, request: dict[str, Any]) -> str:
    """Same DAG run and same request -> same token: a retried StartJobRun is idempotent on the service.

    The request's content is in it, so a changed script, repo or setting is a new job run, and so
    is a new DAG run over the same interval (a backfill after a fix recomputes).
    """
    payload = json.dumps({"run_id": run_id, "request": request}, sort_keys=True)
    return bytes_sha256(payload.encode())  # 64 characters: StartJobRun's limit


def job_run_request(
    *, settings: Settings, interval: dict[str, str], script_uri: str, repo_uri: str, run_id: str
) -> dict[str, Any]:
    """`EmrServerlessStartJobOperator` keyword arguments for one interval (JSON-serializable: they travel by XCom)."""
    check_settings(settings)
    root = str(settings.object_store_uri)
    start, end = _days(interval)
    service_side = {
        "application_id": settings.emr_application_id,
        "execution_role_arn": settings.emr_execution_role_arn,
        "job_driver": {"sparkSubmit": {
            "entryPoint": script_uri,
            "entryPointArguments": feature_job_arguments(settings, {"start": start, "end": end},
                                                         feature_repo=REPO_DIR),
            "sparkSubmitParameters": spark_submit_parameters(repo_uri, settings.emr_spark_submit_parameters),
        }},
        "configuration_overrides": {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"{root}/logs/emr/"}},
        },
        "name": job_name(interval),
        "config": {"tags": {"app": "mlfleet", "mlfleet-job": "features", "mlfleet-start": start, "mlfleet-end": end}},
    }
    return {
        **service_side,
        "client_request_token": client_token(run_id, service_side),
        "aws_conn_id": settings.aws_conn_id,
        "region_name": settings.aws_region,
        "deferrable": settings.emr_deferrable,
        "wait_for_completion": True,
        "waiter_delay": settings.emr_check_interval,
        "waiter_max_attempts": -(-MAX_WAIT_SECONDS // settings.emr_check_interval),
    }


def repo_archive(repo: Path) -> bytes:
    """The Feast repo as a zip whose bytes depend only on its files (sorted, fixed times, no caches)."""
    if not (repo / "feature_store.yaml").is_file():
        raise SpecError("feature_repo", f"{repo} has no feature_store.yaml; check MLFLEET_FEATURE_REPO")
    files = sorted(p for p in repo.rglob("*")
                   if p.is_file() and "__pycache__" not in p.relative_to(repo).parts and p.suffix != ".pyc")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(repo).as_posix(), date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def stage_code(settings: Settings) -> dict[str, str]:
    """Upload the feature job (unchanged) and the repo zip, each once per content; their URIs."""
    from mlfleet.backends import object_store

    check_settings(settings)  # misconfigured: fail before uploading anything
    root = str(settings.object_store_uri)
    script_uri = naming.code_uri(root, file_sha256(FEATURE_JOB), FEATURE_JOB.name)
    object_store.upload_once(settings, FEATURE_JOB, script_uri)
    data = repo_archive(Path(settings.feature_repo))
    repo_uri = naming.code_uri(root, bytes_sha256(data), REPO_ARCHIVE)
    with tempfile.TemporaryDirectory(prefix="mlfleet-repo-") as tmp:
        path = Path(tmp) / REPO_ARCHIVE
        path.write_bytes(data)
        object_store.upload_once(settings, path, repo_uri)
    return {"script_uri": script_uri, "repo_uri": repo_uri}
