"""The SageMaker backend against a moto server whose runtime stand-in really runs the jobs."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

RUN_ID = "20261123T000000-5a6e"
SPEC = {
    "name": "iris-sm",
    "task": "classification",
    "target": "target",
    "metric": "accuracy",
    "dataset": {"builtin": "iris"},
    "cv": {"folds": 3, "seed": 0},
    "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}],
    "resources": {"cpu": 2, "memory_gb": 4},
    "backend": "sagemaker",
}


def one_job(settings, spec=SPEC, run_id=RUN_ID):
    from mlfleet import sweep
    from mlfleet.sweep import dispatch

    context = sweep.prepare(spec, settings=settings, run_id=run_id)
    [batch] = sweep.propose(context, round_index=0, settings=settings)
    job = dispatch.sagemaker_job(context, batch, settings=settings)
    return context, batch, job


def operator(job, **overrides):
    from mlfleet.backends.sagemaker_operator import BatchTrainingJobOperator

    return BatchTrainingJobOperator(task_id="run_sagemaker", **{**job, **overrides})


def test_job_runs_and_a_rerun_reattaches_instead_of_starting_a_second(aws, settings) -> None:
    context, batch, job = one_job(settings)
    summary = operator(job, deferrable=False).execute({})
    assert summary["job_name"] == job["config"]["TrainingJobName"]
    assert summary["trials"] == 2 and summary["failed"] == 0
    assert summary["billable_seconds"] >= 1
    rows = json.loads((settings.experiments_dir / "iris-sm" / RUN_ID / "batches" / batch["batch_id"] / "model/results.json").read_text())
    assert {r["trial_id"] for r in rows} == {t["trial_id"] for t in batch["trials"]}
    assert all(r["job_name"] == summary["job_name"] for r in rows)

    again = operator(job, deferrable=False).execute({})  # a retry, a cleared task, a restarted scheduler
    assert again["job_name"] == summary["job_name"]
    sent = [r for r in aws.created_training_jobs() if r["TrainingJobName"].startswith(summary["job_name"])]
    assert len(sent) == 1
    listed = aws.client("sagemaker").list_training_jobs(NameContains=summary["job_name"])["TrainingJobSummaries"]
    assert len(listed) == 1
    described = aws.client("sagemaker").describe_training_job(TrainingJobName=summary["job_name"])
    assert {m["MetricName"] for m in described["FinalMetricDataList"]} == {"fold_score", "mean_score"}


def test_deferred_operator_waits_on_the_trigger_against_the_server(aws, settings) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    _, batch, job = one_job(settings, run_id="20261123T000001-defe")
    with aws.hold():
        with pytest.raises(TaskDeferred) as deferred:
            operator(job, deferrable=True).execute({})
        retry = operator(job, deferrable=True)
        with pytest.raises(TaskDeferred):
            retry.execute({})  # re-attaches to the held job: defers again, creates nothing
    trigger = deferred.value.trigger

    async def first_event():
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    assert event["status"] == "success"
    summary = retry.execute_complete({}, event)
    assert summary["trials"] == 2
    assert len([r for r in aws.created_training_jobs() if r["TrainingJobName"] == job["config"]["TrainingJobName"]]) == 1


def test_on_kill_stops_the_job_and_the_retry_takes_the_next_attempt_name(aws, settings) -> None:
    _, _, job = one_job(settings, run_id="20261123T000002-k111")
    name = job["config"]["TrainingJobName"]
    client = aws.client("sagemaker")
    with aws.hold():
        running = operator(job, wait_for_completion=False, deferrable=False)
        assert running.execute({})["status"] == "InProgress"
        running.on_kill()  # the task was marked failed, or timed out
        assert wait_for_status(client, name) == "Stopped"
    summary = operator(job, deferrable=False).execute({})
    assert summary["job_name"] == f"{name}-a2"
    assert summary["trials"] == 2
    assert [r["TrainingJobName"] for r in aws.created_training_jobs() if r["TrainingJobName"].startswith(name)] == [name, f"{name}-a2"]


def test_killing_the_deferred_task_stops_the_job(aws, settings) -> None:
    """Deferred, the task has no worker to run on_kill: the triggerer calls the trigger's on_kill
    (Airflow 3.3, for a user's mark-failed or clear). The trigger survives serialization, as the
    triggerer rebuilds it from its classpath."""
    import importlib

    from airflow.providers.common.compat.sdk import TaskDeferred

    from mlfleet.backends.sagemaker_operator import TrainingJobTrigger

    _, _, job = one_job(settings, run_id="20261123T000003-k222")
    name = job["config"]["TrainingJobName"]
    with aws.hold():
        with pytest.raises(TaskDeferred) as deferred:
            operator(job, deferrable=True).execute({})  # the stock execute creates the job, then defers
        classpath, kwargs = deferred.value.trigger.serialize()
        module, _, class_name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), class_name)(**kwargs)
        assert isinstance(trigger, TrainingJobTrigger) and trigger.job_name == name
        asyncio.run(trigger.on_kill())
        assert wait_for_status(aws.client("sagemaker"), name) == "Stopped"
    asyncio.run(trigger.on_kill())  # already stopped: nothing to do, no error


def test_failed_job_fails_the_task_with_the_failure_file_reason(aws, settings) -> None:
    from mlfleet.backends.sagemaker_operator import BatchTrainingJobOperator

    _, _, job = one_job(settings, run_id="20261123T000003-fa11")
    broken = {**job, "config": {**job["config"], "HyperParameters": {**job["config"]["HyperParameters"], "target": "no_such_column"}}}
    with pytest.raises(Exception, match=r"no_such_column"):
        BatchTrainingJobOperator(task_id="run_sagemaker", **{**broken, "deferrable": False}).execute({})
    status = aws.client("sagemaker").describe_training_job(TrainingJobName=job["config"]["TrainingJobName"])
    assert status["TrainingJobStatus"] == "Failed"
    assert "no_such_column" in status["FailureReason"]


def wait_for_status(client, name: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    status = client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    while status in ("InProgress", "Stopping") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    return status


def test_spot_job_restarted_after_interruption_skips_checkpointed_trials(aws, settings, monkeypatch) -> None:
    from mlfleet.config import get_settings

    monkeypatch.setenv("MLFLEET_SAGEMAKER_SPOT", "true")
    context, batch, job = one_job(get_settings(), run_id="20261123T000004-5907")
    config = job["config"]
    assert config["EnableManagedSpotTraining"] is True
    assert config["StoppingCondition"]["MaxWaitTimeInSeconds"] > config["StoppingCondition"]["MaxRuntimeInSeconds"]
    # The reclaimed instance had finished one trial and SageMaker had synced its checkpoint to S3.
    done = batch["trials"][0]
    checkpoint = {"trial_id": done["trial_id"], "model": done["model"], "params": done["params"],
                  "fold_scores": [0.5, 0.5, 0.5], "mean_score": 0.5, "std_score": 0.0, "fit_seconds": 1234.5,
                  "status": "success", "error": None}
    bucket, _, prefix = config["CheckpointConfig"]["S3Uri"].removeprefix("s3://").partition("/")
    aws.client("s3").put_object(Bucket=bucket, Key=f"{prefix}{done['trial_id']}.json", Body=json.dumps(checkpoint))

    summary = operator(job, deferrable=False).execute({})
    rows = {r["trial_id"]: r for r in json.loads((settings.experiments_dir / "iris-sm" / "20261123T000004-5907" / "batches"
                                                   / batch["batch_id"] / "model/results.json").read_text())}
    assert summary["trials"] == 2
    assert rows[done["trial_id"]]["fit_seconds"] == 1234.5  # taken from the checkpoint, not run again
    other = next(t for t in batch["trials"] if t["trial_id"] != done["trial_id"])
    assert rows[other["trial_id"]]["fit_seconds"] < 100 and len(rows[other["trial_id"]]["fold_scores"]) == 3
    log = (aws.work / "jobs" / summary["job_name"] / "stdout.log").read_text()
    assert f"trial={other['trial_id']} mean_score=" in log and f"trial={done['trial_id']} fold=" not in log
