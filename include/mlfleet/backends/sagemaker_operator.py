"""The Amazon provider's SageMakerTrainingOperator, with re-attach, stop-on-kill and results fetching.

The stock operator either fails or starts a second, timestamped job when the name exists; a
retried batch must instead re-attach to its own job (running: wait for it; completed: take its
results). Deterministic names make that possible: describe first, then create only if needed.
Killing the task stops the job both while a worker waits (`on_kill`) and while the task is
deferred (`TrainingJobTrigger.on_kill`, which the provider's trigger lacks).
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any, NoReturn

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from botocore.exceptions import ClientError

from mlfleet.backends import batch_results, naming

RESULTS_MEMBER = "results.json"
# DescribeTrainingJob states in which StopTrainingJob still has something to stop.
STOPPABLE = ("InProgress",)


class TrainingJobTrigger(SageMakerTrigger):
    """The provider's SageMakerTrigger, plus stopping the job when a user kills the deferred task.

    Airflow 3.3 calls a trigger's `on_kill` when a deferred task is marked failed, marked success
    or cleared (not when a triggerer restarts or hands the trigger on). SageMakerTrigger does not
    implement it, so the job would go on running and billing with nobody waiting for it.
    """

    async def on_kill(self) -> None:
        async with await self.hook().get_async_conn() as client:
            description = await client.describe_training_job(TrainingJobName=self.job_name)
            if description["TrainingJobStatus"] in STOPPABLE:
                self.log.info("Task killed while deferred: stopping training job %s.", self.job_name)
                await client.stop_training_job(TrainingJobName=self.job_name)


class BatchTrainingJobOperator(SageMakerTrainingOperator):
    """Run one trial batch as a SageMaker training job; return the batch summary (small XCom)."""

    def __init__(self, *, results_dir: str | None, batch_id: str | None, results_conn_id: str | None = None,
                 **kwargs: Any) -> None:
        kwargs["check_if_job_exists"] = False  # handled here: re-attach instead of a timestamped twin
        super().__init__(**kwargs)
        self.results_dir = results_dir
        self.results_conn_id = results_conn_id
        self.batch_id = batch_id
        self.job_name: str | None = None

    def find_job(self, base: str) -> tuple[str, dict[str, Any] | None]:
        """The batch's live or finished job, else the next unused attempt name.

        A failed or stopped job's name cannot be reused, so attempts go `<base>`, `<base>-a2`, ...
        in order; the first name that is running or completed is this batch's job.
        """
        for attempt in range(1, naming.MAX_ATTEMPTS + 1):
            name = naming.attempt_name(base, attempt)
            try:
                description = self.hook.describe_training_job(name)
            except ClientError as err:
                if err.response["Error"]["Code"] == "ValidationException":
                    return name, None
                raise
            if description["TrainingJobStatus"] not in self.hook.training_failed_states:
                return name, description
            self.log.info("Job %s ended %s; the retry uses the next attempt name.", name, description["TrainingJobStatus"])
        raise RuntimeError(f"batch {self.batch_id}: {naming.MAX_ATTEMPTS} attempts of job {base} failed; not starting another")

    def execute(self, context: Any) -> dict[str, Any]:
        name, description = self.find_job(self.config["TrainingJobName"])
        self.config["TrainingJobName"] = self.job_name = name
        if description is None:
            super().execute(context)  # creates the job; defers or waits as configured
            if not self.wait_for_completion:
                return {"batch_id": self.batch_id, "job_name": name, "status": "InProgress"}
            return self.finish(name)
        status = description["TrainingJobStatus"]
        self.log.info("Re-attaching to existing training job %s (%s).", name, status)
        if status in self.hook.non_terminal_states:
            if self.deferrable:
                self.defer(
                    trigger=TrainingJobTrigger(
                        job_name=name, job_type="Training", waiter_delay=self.check_interval,
                        waiter_max_attempts=self.max_attempts, aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name, verify=self.verify, botocore_config=self.botocore_config,
                    ),
                    method_name="execute_complete",
                )
            self.hook.check_status(name, "TrainingJobStatus", self.hook.describe_training_job,
                                   self.check_interval, self.max_ingestion_time)
        return self.finish(name)

    def defer(self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None,
              timeout: Any = None) -> NoReturn:
        """The stock `execute` defers on SageMakerTrigger once it has created the job: wait on ours."""
        if type(trigger) is SageMakerTrigger:
            trigger = TrainingJobTrigger(**trigger.serialize()[1])
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        super().execute_complete(context, event)
        return self.finish(str((event or {}).get("job_name") or self.config["TrainingJobName"]))

    def finish(self, name: str) -> dict[str, Any]:
        """Bring the job's results (in its model artifact) into the batch's results location."""
        description = self.hook.describe_training_job(name)
        if description["TrainingJobStatus"] != "Completed":
            reason = description.get("FailureReason", "(no reason given)")
            raise RuntimeError(f"training job {name} ended {description['TrainingJobStatus']}: {reason}")
        rows = self.read_results(description["ModelArtifacts"]["S3ModelArtifacts"])
        billable = billable_seconds(description)
        if self.results_dir and self.batch_id:
            batch_results.store_rows(self.results_dir, self.batch_id, rows, conn_id=self.results_conn_id,
                                     job_name=name, billable_seconds=billable)
        return batch_results.summary(self.batch_id or name, rows, job_name=name, billable_seconds=billable)

    def read_results(self, artifact_uri: str) -> list[dict[str, Any]]:
        hook = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify)
        bucket, key = S3Hook.parse_s3_url(artifact_uri)
        blob = hook.get_key(key, bucket_name=bucket).get()["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
            member = archive.extractfile(RESULTS_MEMBER)
            if member is None:
                raise RuntimeError(f"{artifact_uri} holds no {RESULTS_MEMBER}")
            return json.loads(member.read())

    def on_kill(self) -> None:
        """Stop the job when the task is killed while a worker waits (marked failed, timed out)."""
        if not self.job_name:
            return
        try:
            description = self.hook.describe_training_job(self.job_name)
            if description["TrainingJobStatus"] in STOPPABLE:
                self.log.info("Stopping training job %s.", self.job_name)
                self.hook.conn.stop_training_job(TrainingJobName=self.job_name)
        except ClientError as err:
            self.log.warning("Could not stop training job %s: %s", self.job_name, err)


def billable_seconds(description: dict[str, Any]) -> int | None:
    """SageMaker's own figure (spot jobs bill less than they run), else run time × instances."""
    if description.get("BillableTimeInSeconds") is not None:
        return int(description["BillableTimeInSeconds"])
    start, end = description.get("TrainingStartTime"), description.get("TrainingEndTime")
    if start is None or end is None:
        return None
    return int(SageMakerHook.count_billable_seconds(
        training_start_time=start, training_end_time=end, instance_count=description["ResourceConfig"]["InstanceCount"]))
