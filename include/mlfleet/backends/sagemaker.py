"""SageMaker backend: a trial batch as one CreateTrainingJob request (a pure function of the batch).

The request runs the trial image's entrypoint under SageMaker's container contract: scalar
hyperparameters, a `train` channel (the sweep's training set, content-addressed, uploaded once)
and a `config` channel (the batch's trials), results in the model artifact, finished trials in
the checkpoint directory so a job restarted after a spot interruption skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlfleet.backends import naming
from mlfleet.backends.object_store import require_root
from mlfleet.config import InstanceType, Settings
from mlfleet.spec import SpecError
from mlfleet.training.entrypoint import METRIC_DEFINITIONS, hyperparameters_of

if TYPE_CHECKING:
    from mlfleet.sweep.context import SweepContext

CHECKPOINT_PATH = "/opt/ml/checkpoints"


def choose_instance(resources: dict[str, Any], table: list[InstanceType], *, field: str = "resources") -> str:
    """The first (smallest) instance type in the configured table that covers `resources`.

    Rows with exactly the GPUs asked for come first, so a large CPU-only batch does not land on
    a GPU machine merely because the table has no bigger CPU instance.
    """
    covering = [row for row in table if row.cpu >= resources["cpu"] and row.memory_gb >= resources["memory_gb"]
                and row.gpu >= resources["gpu"]]
    exact = [row for row in covering if row.gpu == resources["gpu"]]
    if exact or covering:
        return (exact or covering)[0].instance_type
    offered = ", ".join(f"{r.instance_type} ({r.cpu:g} cpu, {r.memory_gb:g} GB, {r.gpu} gpu)" for r in table)
    raise SpecError(
        field,
        f"no instance in MLFLEET_SAGEMAKER_INSTANCE_TYPES covers cpu={resources['cpu']:g}, "
        f"memory_gb={resources['memory_gb']:g}, gpu={resources['gpu']}; configured: {offered}",
    )


MAX_RUNTIME_SECONDS = 28 * 24 * 3600  # SageMaker's limit on MaxRuntimeInSeconds


def check_budget(timeout_minutes: float) -> None:
    if timeout_minutes * 60 > MAX_RUNTIME_SECONDS:
        raise SpecError("budget.timeout_minutes", f"{timeout_minutes:g} minutes is over SageMaker's 28-day limit "
                                                  f"({MAX_RUNTIME_SECONDS // 60} minutes)")


def check_settings(settings: Settings) -> None:
    """What every SageMaker request needs from configuration, named when missing."""
    require_root(settings, "sagemaker")
    if not settings.sagemaker_role_arn:
        raise SpecError("backend", "sagemaker needs an execution role: set MLFLEET_SAGEMAKER_ROLE_ARN=arn:aws:iam::<account>:role/<name>")


def _channel(name: str, uri: str, content_type: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": content_type,
        "InputMode": "File",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
    }


def training_job_request(
    *, context: SweepContext, batch: dict[str, Any], job: dict[str, Any], settings: Settings, attempt: int = 1
) -> dict[str, Any]:
    """The CreateTrainingJob request for one batch; the same batch always gives the same request."""
    check_settings(settings)
    root = str(settings.object_store_uri)
    experiment, run_id, batch_id = context.experiment, context.run_id, batch["batch_id"]
    where = naming.batch_uri(root, experiment, run_id, batch_id)
    # At least a second: the spec allows any positive minutes, the API no runtime under 1 s.
    runtime = max(1, round(context.timeout_minutes * 60))
    request: dict[str, Any] = {
        "TrainingJobName": naming.job_name(experiment=experiment, run_id=run_id, batch_id=batch_id, attempt=attempt),
        "AlgorithmSpecification": {
            "TrainingImage": settings.trial_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(d) for d in METRIC_DEFINITIONS],
        },
        "RoleArn": settings.sagemaker_role_arn,
        "HyperParameters": hyperparameters_of(job),
        "InputDataConfig": [
            _channel("train", str(context.data_uri).rsplit("/", 1)[0] + "/", "application/x-parquet"),
            _channel("config", f"{where}/config/", "application/json"),
        ],
        "OutputDataConfig": {"S3OutputPath": f"{where}/output/"},
        "ResourceConfig": {
            "InstanceType": choose_instance(batch["resources"], settings.sagemaker_instance_types),
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.sagemaker_volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
        "CheckpointConfig": {"S3Uri": f"{where}/checkpoints/", "LocalPath": CHECKPOINT_PATH},
        "Tags": [{"Key": f"mlfleet:{key}", "Value": value} for key, value in
                 (("experiment", experiment), ("run", run_id), ("batch", batch_id))],
    }
    if settings.sagemaker_spot:
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = runtime + settings.sagemaker_spot_wait_seconds
    return request

