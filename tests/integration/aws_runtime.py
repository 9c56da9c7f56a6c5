"""A moto server with stand-ins for SageMaker's and EMR Serverless' runtimes, run as its own process.

(EMR Serverless: emr_runtime.py, installed by `main`.)

moto records a CreateTrainingJob and calls it Completed at once; nothing runs. This stand-in does
what the service would do with exactly the request it received: stage the hyperparameters and
every input channel (read from S3 through this server), run the trial image's entrypoint
(`python -m mlfleet.training.entrypoint train`, the Dockerfile's ENTRYPOINT + SageMaker's
argument) with /opt/ml mapped to a per-job directory, sync checkpoints to the checkpoint S3 URI,
upload model.tar.gz to `<S3OutputPath>/<job>/output/`, then mark the job Completed or Failed
(with the failure file's first line), with timings, billable seconds and the final metrics read
from stdout by the job's own MetricDefinitions regexes. Jobs are InProgress while they run, so
operators really wait and triggers really poll. It also adds what moto lacks and the service
enforces: unique job names, and StopTrainingJob.

Test controls, through the work directory: `<work>/hold` makes new jobs wait before starting;
`<work>/created.jsonl` lists every CreateTrainingJob request received.

    python aws_runtime.py --port 5001 --work /tmp/runtime
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlfleet.storage import split_s3_uri

ENTRYPOINT = [sys.executable, "-m", "mlfleet.training.entrypoint"]


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def download_prefix(client: Any, uri: str, dest: Path) -> int:
    bucket, prefix = split_s3_uri(uri)
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            target = dest / (item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(target))
            count += 1
    return count


class ProcessRuntime:
    """What the runtime stand-ins share: a work directory, this server's endpoint, the processes run."""

    def __init__(self, *, work: Path, endpoint: str) -> None:
        self.work = work
        self.endpoint = endpoint
        self.processes: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def started(self, key: str, process: subprocess.Popen) -> None:
        with self.lock:
            self.processes[key] = process

    def terminate(self, key: str) -> bool:
        """SIGTERM the process group running `key` (the program and its workers); False if none runs."""
        with self.lock:
            process = self.processes.get(key)
        if process is None or process.poll() is not None:
            return False
        os.killpg(process.pid, signal.SIGTERM)
        return True


class TrainingRuntime(ProcessRuntime):
    """Runs each created training job in a thread, the way the service runs its container."""

    def submit(self, job: Any) -> None:
        threading.Thread(target=self.run, args=(job,), daemon=True, name=job.training_job_name).start()

    def stop(self, job: Any) -> None:
        job.training_job_status = "Stopping"
        self.terminate(job.training_job_name)

    def run(self, job: Any) -> None:
        name = job.training_job_name
        while (self.work / "hold").exists() and job.training_job_status == "InProgress":
            time.sleep(0.1)
        root = self.work / "jobs" / name
        client = s3_client(self.endpoint)
        started = time.monotonic()
        job.training_start_time = datetime.now(timezone.utc)
        transition(job, "Training", "Training in progress (stand-in runtime).")
        reason = None
        try:
            if job.training_job_status != "InProgress":
                raise InterruptedError("stopped before it started")
            (root / "input/config").mkdir(parents=True, exist_ok=True)
            (root / "input/config/hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
            for channel in job.input_data_config:
                uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                if not download_prefix(client, uri, root / "input/data" / channel["ChannelName"]):
                    raise FileNotFoundError(f"ClientError: channel {channel['ChannelName']}: no objects under {uri}")
            checkpoint_uri = (job.checkpoint_config or {}).get("S3Uri")
            if checkpoint_uri:
                download_prefix(client, checkpoint_uri, root / "checkpoints")
            env = {**os.environ, "MLFLEET_SM_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
            timeout = (job.stopping_condition or {}).get("MaxRuntimeInSeconds")
            with (root / "stdout.log").open("w") as log:
                process = subprocess.Popen([*ENTRYPOINT, "train"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
                self.started(name, process)
                try:
                    code = process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise TimeoutError("MaxRuntimeExceeded") from None
            if checkpoint_uri:
                bucket, prefix = split_s3_uri(checkpoint_uri)
                for path in sorted((root / "checkpoints").glob("*")):
                    client.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.name}")
            job.final_metric_data_list = final_metrics(job, (root / "stdout.log").read_text())
            if job.training_job_status == "Stopping":
                raise InterruptedError("stopped")
            if code != 0:
                failure = root / "output/failure"
                first = failure.read_text().splitlines()[0] if failure.is_file() else f"exit status {code}"
                raise RuntimeError(f"AlgorithmError: {first}")
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
                for path in sorted((root / "model").rglob("*")):
                    archive.add(path, arcname=str(path.relative_to(root / "model")))
            bucket, key = split_s3_uri(job.model_artifacts["S3ModelArtifacts"])
            client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        except InterruptedError:
            reason = "stopped"
        except Exception as err:  # noqa: BLE001 - becomes the job's FailureReason, as on the service
            reason = str(err) or type(err).__name__
        job.training_end_time = datetime.now(timezone.utc)
        job.billable_time_in_seconds = math.ceil(time.monotonic() - started) * job.resource_config.get("InstanceCount", 1)
        if reason == "stopped":
            transition(job, "Stopped", "Training job stopped.")
            job.training_job_status = "Stopped"
        elif reason:
            job.failure_reason = reason[:1024]
            transition(job, "Failed", f"Training job failed: {job.failure_reason}")
            job.training_job_status = "Failed"
        else:
            transition(job, "Completed", "Training job completed.")
            job.training_job_status = "Completed"


def transition(job: Any, status: str, message: str) -> None:
    """Append to SecondaryStatusTransitions as the service does (the provider's log tailer reads them)."""
    now = datetime.now(timezone.utc)
    if job.secondary_status_transitions:
        job.secondary_status_transitions[-1]["EndTime"] = now
    job.secondary_status_transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
    job.secondary_status = status
    job.last_modified_time = now


def final_metrics(job: Any, stdout: str) -> list[dict[str, Any]]:
    """What SageMaker does with MetricDefinitions: the last value each regex finds in the log."""
    metrics = []
    for definition in job.algorithm_specification.get("MetricDefinitions") or []:
        found = re.findall(definition["Regex"], stdout)
        if found:
            metrics.append({"MetricName": definition["Name"], "Value": float(found[-1]),
                            "Timestamp": datetime.now(timezone.utc)})
    return metrics


def install(runtime: TrainingRuntime) -> None:
    """Wrap moto's SageMaker backend and responses with the runtime."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    original_create = SageMakerModelBackend.create_training_job

    def create_training_job(self: Any, training_job_name: str, **kwargs: Any) -> Any:
        if training_job_name in self.training_jobs:
            raise ResourceInUseException(
                f"Training job names must be unique within an AWS account and region, and a training job "
                f"with this name already exists ({self.training_jobs[training_job_name].arn})")
        sent = copy.deepcopy(kwargs["algorithm_specification"])
        with (runtime.work / "created.jsonl").open("a") as log:
            request = {"".join(part.title() for part in k.split("_")): v for k, v in kwargs.items() if v is not None}
            log.write(json.dumps({"TrainingJobName": training_job_name, **request}, default=str) + "\n")
        job = original_create(self, training_job_name=training_job_name, **kwargs)
        job.algorithm_specification = sent  # moto overwrites MetricDefinitions with its own
        job.training_job_status, job.secondary_status = "InProgress", "Starting"
        job.secondary_status_transitions = [{"Status": "Starting", "StartTime": job.creation_time,
                                             "StatusMessage": "Preparing the instances for training"}]
        job.training_end_time = None
        job.final_metric_data_list = []
        runtime.submit(job)
        return job

    def stop_training_job(self: Any) -> Any:
        name = self._get_param("TrainingJobName")
        job = self.sagemaker_backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(message=f"Could not find training job '{name}'.")
        if job.training_job_status == "InProgress":
            runtime.stop(job)
        return ActionResult({})

    SageMakerModelBackend.create_training_job = create_training_job
    SageMakerResponse.stop_training_job = stop_training_job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    from moto.server import ThreadedMotoServer

    endpoint = f"http://127.0.0.1:{args.port}"
    install(TrainingRuntime(work=args.work, endpoint=endpoint))
    import emr_runtime  # beside this file: EMR Serverless job runs run the feature job for real

    emr_runtime.install(emr_runtime.JobRunRuntime(work=args.work, endpoint=endpoint))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print("ready", flush=True)
    stop.wait()  # a signal handler interrupts the wait and sets the event
    server.stop()


if __name__ == "__main__":
    main()
