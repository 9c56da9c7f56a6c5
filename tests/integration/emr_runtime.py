"""A stand-in for EMR Serverless' Spark runtime, installed into the moto server by aws_runtime.py.

moto records a StartJobRun and reports it SUCCESS at once; nothing runs. This stand-in does what
the service does with exactly the request it received: download the entry point and unpack each
zip of `spark.archives` into the driver's working directory under its `#name`, then spark-submit
the script with its `entryPointArguments` unchanged (s3:// URIs included) and the request's other
`--conf` pairs. Job runs are SUBMITTED, then RUNNING while Spark runs, then SUCCESS or FAILED (with
the last exception in `stateDetails`), or CANCELLED by CancelJobRun, so operators and triggers
really wait. The driver's log goes to the monitoring logUri, where the service puts it.

What it substitutes, and only that:
- EMRFS: Spark reads and writes s3:// through Hadoop's ViewFileSystemOverloadScheme mounted on a
  local mirror of the prefixes the arguments name; the mirror is filled from this server before
  the run and written back after it (new and changed objects uploaded, deleted ones deleted).
- The Python environment: the driver runs this interpreter, so a `.tar.gz` environment archive
  (and the PYSPARK_PYTHON settings pointing into it) is not used.
- Credentials: the job role becomes the emulator's test keys; boto3 in the driver (Feast's S3
  registry) reaches this server through AWS_ENDPOINT_URL_S3.

It also enforces what moto lacks and the API reference documents: a StartJobRun whose clientToken
was seen before for the application returns the job run that token started.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from aws_runtime import ProcessRuntime, s3_client

from mlfleet.storage import split_s3_uri

# Settings that point into the Python environment archive this stand-in does not use.
PYTHON_ENV_CONFS = ("spark.emr-serverless.driverEnv.PYSPARK_PYTHON", "spark.executorEnv.PYSPARK_PYTHON",
                    "spark.pyspark.python", "spark.pyspark.driver.python")


def spark_submit() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def submit_parameters(text: str) -> tuple[list[str], dict[str, str]]:
    """`sparkSubmitParameters` -> (archives, the other confs)."""
    tokens = shlex.split(text or "")
    confs: dict[str, str] = {}
    archives: list[str] = []
    i = 0
    while i < len(tokens):
        token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "--conf" and "=" in following:
            key, _, value = following.partition("=")
            if key == "spark.archives":
                archives += [a for a in value.split(",") if a]
            else:
                confs[key] = value
            i += 2
        elif token == "--archives":
            archives += [a for a in following.split(",") if a]
            i += 2
        else:
            raise ValueError(f"sparkSubmitParameters: the stand-in does not understand {token!r}")
    return archives, confs


class Mirror:
    """The S3 prefixes a job names, as local files Spark reads and writes through ViewFs."""

    def __init__(self, client: Any, root: Path, uris: list[str]) -> None:
        self.client, self.root = client, root
        prefixes = sorted({uri.rstrip("/") for uri in uris})
        # A prefix inside another is covered by it.
        self.prefixes = [p for p in prefixes if not any(p.startswith(q + "/") for q in prefixes if q != p)]
        self.seen: dict[str, tuple[int, int]] = {}

    def local(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def pull(self) -> None:
        for uri in self.prefixes:
            bucket, prefix = split_s3_uri(uri)
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    path = self.local(bucket, item["Key"])
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(bucket, item["Key"], str(path))
                    self.seen[f"{bucket}/{item['Key']}"] = self._stamp(path)

    def push(self) -> dict[str, int]:
        now: dict[str, Path] = {}
        for uri in self.prefixes:
            bucket, prefix = split_s3_uri(uri)
            base = self.local(bucket, prefix)
            for path in base.rglob("*") if base.exists() else []:
                if path.is_file() and not path.name.endswith(".crc"):  # Hadoop's local checksums
                    now[str(path.relative_to(self.root))] = path
        sent = deleted = 0
        for name, path in sorted(now.items()):
            if self.seen.get(name) != self._stamp(path):
                bucket, _, key = name.partition("/")
                self.client.upload_file(str(path), bucket, key)
                sent += 1
        for name in sorted(set(self.seen) - set(now)):
            bucket, _, key = name.partition("/")
            self.client.delete_object(Bucket=bucket, Key=key)
            deleted += 1
        return {"uploaded": sent, "deleted": deleted}

    def hadoop_conf(self) -> dict[str, str]:
        conf = {"spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.viewfs.ViewFileSystemOverloadScheme",
                "spark.hadoop.fs.viewfs.overload.scheme.target.s3.impl": "org.apache.hadoop.fs.RawLocalFileSystem"}
        for bucket in sorted({split_s3_uri(uri)[0] for uri in self.prefixes}):
            (self.root / bucket).mkdir(parents=True, exist_ok=True)
            conf[f"spark.hadoop.fs.viewfs.mounttable.{bucket}.linkFallback"] = (self.root / bucket).as_uri()
        return conf

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        stat = path.stat()
        return stat.st_size, stat.st_mtime_ns


class JobRunRuntime(ProcessRuntime):
    """Runs each started job run in a thread, the way the service runs its Spark driver."""

    def submit(self, job_run: Any) -> None:
        job_run.state = "SUBMITTED"
        threading.Thread(target=self.run, args=(job_run,), daemon=True, name=job_run.id).start()

    def cancel(self, job_run: Any) -> None:
        job_run.state = "CANCELLING"
        if not self.terminate(job_run.id):
            job_run.state = "CANCELLED"

    def run(self, job_run: Any) -> None:
        root = self.work / "emr" / job_run.id
        cwd = root / "working"
        cwd.mkdir(parents=True, exist_ok=True)
        client = s3_client(self.endpoint)
        started = time.monotonic()
        log_path = root / "stdout.log"
        try:
            driver = job_run.job_driver["sparkSubmit"]
            archives, confs = submit_parameters(driver.get("sparkSubmitParameters", ""))
            script = cwd / Path(split_s3_uri(driver["entryPoint"])[1]).name
            client.download_file(*split_s3_uri(driver["entryPoint"]), str(script))
            for archive in archives:
                uri, _, name = archive.partition("#")
                if uri.endswith(".zip"):
                    data = root / Path(split_s3_uri(uri)[1]).name
                    client.download_file(*split_s3_uri(uri), str(data))
                    with zipfile.ZipFile(data) as opened:
                        opened.extractall(cwd / (name or data.stem))
            arguments = [str(a) for a in driver.get("entryPointArguments", [])]
            mirror = Mirror(client, root / "s3", [a for a in arguments if a.startswith("s3://")])
            mirror.pull()
            conf = {k: v for k, v in confs.items() if k not in PYTHON_ENV_CONFS}
            conf.update(mirror.hadoop_conf())
            conf.update({"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable,
                         "spark.ui.enabled": "false"})
            command = [spark_submit(), "--master", "local[2]"]
            for key, value in conf.items():
                command += ["--conf", f"{key}={value}"]
            env = {**os.environ, "AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1"}
            if job_run.state != "SUBMITTED":  # cancelled before Spark started
                job_run.state = "CANCELLED"
                return
            job_run.state = "RUNNING"
            with log_path.open("w") as log:
                process = subprocess.Popen([*command, script.name, *arguments], cwd=cwd, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
                self.started(job_run.id, process)
                try:
                    code = process.wait(timeout=job_run.execution_timeout_minutes * 60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    raise TimeoutError("Job run exceeded the executionTimeoutMinutes") from None
            if job_run.state == "CANCELLING":
                job_run.state, job_run.state_details = "CANCELLED", "Job run cancelled by the user."
            elif code != 0:
                job_run.state = "FAILED"
                job_run.state_details = (f"Job failed, please check complete logs in configured logging "
                                         f"destination. ExitCode: {code}. Last few exceptions: "
                                         f"{last_exception(log_path.read_text())}")[:2048]
            else:
                (root / "sync.json").write_text(json.dumps(mirror.push()))
                job_run.state = "SUCCESS"
        except Exception as err:  # noqa: BLE001 - becomes the run's stateDetails, as on the service
            job_run.state, job_run.state_details = "FAILED", f"{type(err).__name__}: {err}"[:2048]
        job_run.total_execution_duration_seconds = math.ceil(time.monotonic() - started)
        self.upload_log(client, job_run, log_path)

    @staticmethod
    def upload_log(client: Any, job_run: Any, log_path: Path) -> None:
        """The driver's stdout where the service writes it: <logUri>/applications/<app>/jobs/<id>/..."""
        monitoring = (job_run.configuration_overrides or {}).get("monitoringConfiguration", {})
        log_uri = monitoring.get("s3MonitoringConfiguration", {}).get("logUri")
        if not log_uri or not log_path.is_file():
            return
        bucket, prefix = split_s3_uri(log_uri)
        key = f"{prefix.rstrip('/')}/applications/{job_run.application_id}/jobs/{job_run.id}/SPARK_DRIVER/stdout.gz"
        client.put_object(Bucket=bucket, Key=key.lstrip("/"), Body=gzip.compress(log_path.read_bytes()))


def last_exception(log: str) -> str:
    """The last line naming an error or exception (else the last line), as the service reports it."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["no output"])[-1]


def install(runtime: JobRunRuntime) -> None:
    """Wrap moto's EMR Serverless backend with the runtime."""
    from moto.emrserverless.models import EMRServerlessBackend

    original_start = EMRServerlessBackend.start_job_run
    original_cancel = EMRServerlessBackend.cancel_job_run

    def start_job_run(self: Any, application_id: str, client_token: str, **kwargs: Any) -> Any:
        for earlier in self.job_runs.get(application_id, []):
            if client_token and earlier.client_token == client_token:
                return earlier
        job_run = original_start(self, application_id=application_id, client_token=client_token, **kwargs)
        runtime.submit(job_run)
        return job_run

    def cancel_job_run(self: Any, application_id: str, job_run_id: str) -> tuple[str, str]:
        job_run = self.get_job_run(application_id, job_run_id)
        if job_run.state in ("SUBMITTED", "PENDING", "SCHEDULED", "RUNNING"):
            runtime.cancel(job_run)
            return application_id, job_run_id
        return original_cancel(self, application_id, job_run_id)

    EMRServerlessBackend.start_job_run = start_job_run
    EMRServerlessBackend.cancel_job_run = cancel_job_run
