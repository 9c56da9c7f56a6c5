"""The CreateTrainingJob request of one batch: a snapshot, and checks against botocore's own
service model (the shapes, types, lengths and enums the real API enforces)."""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import botocore.validate
import pytest
from hypothesis import given, strategies as st

from backend_inputs import DATA_URI, make_batch, make_context, planned_batches
from mlfleet.backends import naming, sagemaker
from mlfleet.config import DEFAULT_SAGEMAKER_INSTANCES, InstanceType, Settings
from mlfleet.spec import SpecError
from mlfleet.sweep import batch_job

BATCH_URI = "s3://bucket/prefix/experiments/churn-baseline/20261123T000000-5a6e/batches/r0-abcdef0123"


@pytest.fixture(scope="module")
def create_training_job() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")


def request_for(settings: Settings, *, gpu: int = 0, **context_changes: Any) -> dict[str, Any]:
    context, batch = make_context("sagemaker", **context_changes), make_batch(gpu=gpu)
    return sagemaker.training_job_request(context=context, batch=batch, job=batch_job(context, batch), settings=settings)


def assert_valid_for_the_api(request: dict[str, Any], operation: Any) -> None:
    """botocore's ParamValidator (types, required members, minimums), plus what it leaves to the
    service: the name's pattern and maximum, the instance type enum, hyperparameter value lengths."""
    report = botocore.validate.ParamValidator().validate(request, operation.input_shape)
    assert report.generate_report() == ""
    members = operation.input_shape.members
    name = members["TrainingJobName"].metadata
    assert len(request["TrainingJobName"]) <= name["max"]
    assert re.fullmatch(name["pattern"], request["TrainingJobName"])
    assert request["ResourceConfig"]["InstanceType"] in members["ResourceConfig"].members["InstanceType"].enum
    hyperparameters = members["HyperParameters"]
    assert len(request["HyperParameters"]) <= hyperparameters.metadata["max"]
    for key, value in request["HyperParameters"].items():
        assert isinstance(value, str) and len(value) <= hyperparameters.value.metadata["max"] == 2500, key
        assert len(key) <= hyperparameters.key.metadata["max"]
    for tag in request["Tags"]:
        assert len(tag["Value"]) <= members["Tags"].member.members["Value"].metadata["max"]
    stopping = request["StoppingCondition"]
    assert stopping.get("MaxWaitTimeInSeconds", stopping["MaxRuntimeInSeconds"]) >= stopping["MaxRuntimeInSeconds"] >= 1


def test_request_snapshot(remote_settings: Settings) -> None:
    assert request_for(remote_settings) == {
        "TrainingJobName": "churn-baseline-94b73ddc6f",
        "AlgorithmSpecification": {
            "TrainingImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlfleet-trial:1.0",
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "fold_score", "Regex": r"fold=\d+ score=([-+0-9.eE]+)"},
                {"Name": "mean_score", "Regex": r"mean_score=([-+0-9.eE]+)"},
            ],
        },
        "RoleArn": "arn:aws:iam::123456789012:role/x",
        "HyperParameters": {"task": "classification", "target": "churned", "metric": "roc_auc",
                            "cv_folds": "5", "cv_seed": "0"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "application/x-parquet",
                "InputMode": "File",
                "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": DATA_URI.rsplit("/", 1)[0] + "/",
                    "S3DataDistributionType": "FullyReplicated",
                }},
            },
            {
                "ChannelName": "config",
                "ContentType": "application/json",
                "InputMode": "File",
                "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"{BATCH_URI}/config/",
                    "S3DataDistributionType": "FullyReplicated",
                }},
            },
        ],
        "OutputDataConfig": {"S3OutputPath": f"{BATCH_URI}/output/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        "CheckpointConfig": {"S3Uri": f"{BATCH_URI}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"},
        "Tags": [
            {"Key": "mlfleet:experiment", "Value": "churn-baseline"},
            {"Key": "mlfleet:run", "Value": "20261123T000000-5a6e"},
            {"Key": "mlfleet:batch", "Value": "r0-abcdef0123"},
        ],
    }


def test_the_validator_is_not_vacuous(remote_settings: Settings, create_training_job: Any) -> None:
    request = request_for(remote_settings)
    request["HyperParameters"]["cv_folds"] = 5
    del request["RoleArn"]
    report = botocore.validate.ParamValidator().validate(request, create_training_job.input_shape)
    assert "HyperParameters.cv_folds" in report.generate_report() and "RoleArn" in report.generate_report()


@pytest.mark.parametrize("gpu, spot, instance", [(0, False, "ml.m5.large"), (1, False, "ml.g5.xlarge"),
                                                 (0, True, "ml.m5.large"), (2, True, "ml.g5.12xlarge")])
def test_cpu_gpu_and_spot_requests_are_valid(gpu: int, spot: bool, instance: str, remote_settings: Settings,
                                             create_training_job: Any) -> None:
    settings = remote_settings.model_copy(update={"sagemaker_spot": spot})
    request = request_for(settings, gpu=gpu)
    assert_valid_for_the_api(request, create_training_job)
    assert request["ResourceConfig"]["InstanceType"] == instance
    assert ("EnableManagedSpotTraining" in request) is spot


def test_every_planned_batch_gives_a_valid_request(remote_settings: Settings, create_training_job: Any) -> None:
    context = make_context("sagemaker")
    batches = planned_batches(remote_settings, "sagemaker")
    requests = [sagemaker.training_job_request(context=context, batch=b, job=batch_job(context, b), settings=remote_settings)
                for b in batches]
    assert sorted(r["ResourceConfig"]["InstanceType"] for r in requests) == ["ml.g5.xlarge", "ml.m5.large"]
    assert len({r["TrainingJobName"] for r in requests}) == len(batches) == 2
    for request in requests:
        assert_valid_for_the_api(request, create_training_job)


def test_same_batch_same_request_and_attempts_only_rename(remote_settings: Settings) -> None:
    context, batch = make_context("sagemaker"), make_batch()
    job = batch_job(context, batch)
    first = sagemaker.training_job_request(context=context, batch=batch, job=job, settings=remote_settings)
    assert sagemaker.training_job_request(context=context, batch=batch, job=job, settings=remote_settings) == first
    retry = sagemaker.training_job_request(context=context, batch=batch, job=job, settings=remote_settings, attempt=2)
    assert retry["TrainingJobName"] == first["TrainingJobName"] + "-a2"
    # A retried job resumes from the same checkpoints and writes the same place.
    assert {**retry, "TrainingJobName": first["TrainingJobName"]} == first


def test_spot_waits_for_capacity_on_top_of_the_budget(remote_settings: Settings, create_training_job: Any) -> None:
    settings = remote_settings.model_copy(update={"sagemaker_spot": True, "sagemaker_spot_wait_seconds": 600})
    request = request_for(settings)
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 2400}
    no_wait = request_for(remote_settings.model_copy(update={"sagemaker_spot": True, "sagemaker_spot_wait_seconds": 0}))
    assert no_wait["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 1800}
    assert "EnableManagedSpotTraining" not in request_for(remote_settings)


@pytest.mark.parametrize("budget, seconds", [({"timeout_minutes": 30}, 1800), ({"timeout_minutes": 0.5}, 30),
                                             ({}, 3600), ({"timeout_minutes": 0.001}, 1)])
def test_stopping_condition_from_the_budget(budget: dict[str, Any], seconds: int, remote_settings: Settings,
                                            create_training_job: Any) -> None:
    request = request_for(remote_settings, spec={**make_context("sagemaker").spec, "budget": budget})
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == seconds
    assert_valid_for_the_api(request, create_training_job)


@pytest.mark.parametrize("line, name, value", [
    ("trial=xgboost-1a2b3c4d fold=0 score=0.93", "fold_score", "0.93"),
    ("trial=xgboost-1a2b3c4d fold=12 score=-1.5e-05", "fold_score", "-1.5e-05"),
    ("trial=xgboost-1a2b3c4d mean_score=-1.5e-05", "mean_score", "-1.5e-05"),
    ("trial=mlp-5e6f7a8b mean_score=0.8125", "mean_score", "0.8125"),
])
def test_metric_definitions_read_the_entrypoints_stdout(line: str, name: str, value: str, remote_settings: Settings) -> None:
    definitions = request_for(remote_settings)["AlgorithmSpecification"]["MetricDefinitions"]
    found = {d["Name"]: m.group(1) for d in definitions if (m := re.search(d["Regex"], line))}
    assert found == {name: value}
    float(value)


def test_metric_definitions_read_what_the_entrypoint_prints(remote_settings: Settings) -> None:
    # The same format strings as mlfleet.training.entrypoint.run's `record`.
    row = {"trial_id": "xgboost-1a2b3c4d", "fold_scores": [0.93, -1.5e-05], "mean_score": 0.4649925}
    lines = [f"trial={row['trial_id']} fold={k} score={s:.10g}" for k, s in enumerate(row["fold_scores"])]
    lines.append(f"trial={row['trial_id']} mean_score={row['mean_score']:.10g}")
    lines.append(f"trial={row['trial_id']} status=failed error=ValueError: max_depth=-5")
    definitions = request_for(remote_settings)["AlgorithmSpecification"]["MetricDefinitions"]
    read = {d["Name"]: [float(m.group(1)) for line in lines if (m := re.search(d["Regex"], line))] for d in definitions}
    assert read == {"fold_score": [0.93, -1.5e-05], "mean_score": [0.4649925]}


def test_tags_and_locations_name_the_batch(remote_settings: Settings) -> None:
    request = request_for(remote_settings)
    assert {t["Key"]: t["Value"] for t in request["Tags"]} == {
        "mlfleet:experiment": "churn-baseline", "mlfleet:run": "20261123T000000-5a6e", "mlfleet:batch": "r0-abcdef0123"}
    assert request["OutputDataConfig"]["S3OutputPath"].startswith(BATCH_URI + "/")
    assert request["CheckpointConfig"]["S3Uri"].startswith(BATCH_URI + "/")
    config = request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"]
    assert naming.config_uri("s3://bucket/prefix", "churn-baseline", "20261123T000000-5a6e", "r0-abcdef0123").startswith(config)


def test_a_trailing_slash_on_the_object_store_does_not_double(remote_settings: Settings) -> None:
    settings = Settings(object_store_uri="s3://bucket/prefix/", sagemaker_role_arn=remote_settings.sagemaker_role_arn,
                        trial_image=remote_settings.trial_image)
    assert request_for(settings) == request_for(remote_settings)


# Instance choice ------------------------------------------------------------------------------

@pytest.mark.parametrize("resources, instance", [
    ({"cpu": 1, "memory_gb": 2, "gpu": 0}, "ml.m5.large"),
    ({"cpu": 2, "memory_gb": 8, "gpu": 0}, "ml.m5.large"),  # exactly covered
    ({"cpu": 2, "memory_gb": 8.5, "gpu": 0}, "ml.m5.xlarge"),
    ({"cpu": 4.5, "memory_gb": 2, "gpu": 0}, "ml.m5.2xlarge"),
    ({"cpu": 16, "memory_gb": 64, "gpu": 0}, "ml.m5.4xlarge"),
    ({"cpu": 1, "memory_gb": 2, "gpu": 1}, "ml.g5.xlarge"),
    ({"cpu": 6, "memory_gb": 2, "gpu": 1}, "ml.g5.2xlarge"),
    ({"cpu": 1, "memory_gb": 2, "gpu": 2}, "ml.g5.12xlarge"),
])
def test_smallest_covering_instance(resources: dict[str, Any], instance: str) -> None:
    assert sagemaker.choose_instance(resources, DEFAULT_SAGEMAKER_INSTANCES) == instance


@given(cpu=st.floats(0.1, 48), memory_gb=st.floats(0.1, 192), gpu=st.integers(0, 4))
def test_choice_covers_and_no_earlier_row_does(cpu: float, memory_gb: float, gpu: int) -> None:
    resources = {"cpu": cpu, "memory_gb": memory_gb, "gpu": gpu}
    chosen = sagemaker.choose_instance(resources, DEFAULT_SAGEMAKER_INSTANCES)
    index = [r.instance_type for r in DEFAULT_SAGEMAKER_INSTANCES].index(chosen)

    def covers(row: InstanceType) -> bool:
        return row.cpu >= cpu and row.memory_gb >= memory_gb and row.gpu >= gpu

    assert covers(DEFAULT_SAGEMAKER_INSTANCES[index])
    assert not any(covers(row) for row in DEFAULT_SAGEMAKER_INSTANCES[:index])
    assert (DEFAULT_SAGEMAKER_INSTANCES[index].gpu > 0) or gpu == 0


@pytest.mark.parametrize("resources", [{"cpu": 128, "memory_gb": 2, "gpu": 0}, {"cpu": 1, "memory_gb": 2, "gpu": 8},
                                       {"cpu": 1, "memory_gb": 512, "gpu": 0}])
def test_no_covering_instance_names_the_setting_and_the_table(resources: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as error:
        sagemaker.choose_instance(resources, DEFAULT_SAGEMAKER_INSTANCES, field="models[1].resources")
    assert error.value.field == "models[1].resources"
    message = str(error.value)
    assert "MLFLEET_SAGEMAKER_INSTANCE_TYPES" in message
    assert f"cpu={resources['cpu']:g}, memory_gb={resources['memory_gb']:g}, gpu={resources['gpu']}" in message
    assert "ml.m5.large (2 cpu, 8 GB, 0 gpu)" in message and "ml.g5.12xlarge (48 cpu, 192 GB, 4 gpu)" in message


def test_a_configured_table_replaces_the_default(remote_settings: Settings) -> None:
    table = [InstanceType(instance_type="ml.c5.xlarge", cpu=4, memory_gb=8)]
    settings = remote_settings.model_copy(update={"sagemaker_instance_types": table})
    assert request_for(settings)["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    with pytest.raises(SpecError, match=r"^resources: no instance in MLFLEET_SAGEMAKER_INSTANCE_TYPES .*ml\.c5\.xlarge"):
        request_for(settings, gpu=1)


# Settings the request needs ----------------------------------------------------------------------

@pytest.mark.parametrize("missing, variable", [("object_store_uri", "MLFLEET_OBJECT_STORE_URI"),
                                               ("sagemaker_role_arn", "MLFLEET_SAGEMAKER_ROLE_ARN")])
def test_missing_settings_are_named(missing: str, variable: str, remote_settings: Settings) -> None:
    settings = remote_settings.model_copy(update={missing: None})
    with pytest.raises(SpecError, match=f"^backend: sagemaker needs .*set {variable}="):
        sagemaker.check_settings(settings)
    with pytest.raises(SpecError, match=variable):
        request_for(settings)


def test_a_large_cpu_batch_gets_a_cpu_instance_not_a_bigger_gpu_one() -> None:
    from mlfleet.config import DEFAULT_SAGEMAKER_INSTANCES
    from mlfleet.backends.sagemaker import choose_instance

    assert choose_instance({"cpu": 32, "memory_gb": 64, "gpu": 0}, DEFAULT_SAGEMAKER_INSTANCES) == "ml.m5.12xlarge"
    assert choose_instance({"cpu": 32, "memory_gb": 64, "gpu": 2}, DEFAULT_SAGEMAKER_INSTANCES) == "ml.g5.12xlarge"
    # no exact GPU count: the smallest row with more GPUs than asked still serves
    assert choose_instance({"cpu": 4, "memory_gb": 8, "gpu": 3}, DEFAULT_SAGEMAKER_INSTANCES) == "ml.g5.12xlarge"


def test_a_budget_over_sagemakers_28_days_is_refused_up_front() -> None:
    from mlfleet.backends.sagemaker import check_budget
    from mlfleet.spec import SpecError

    check_budget(28 * 24 * 60)
    with pytest.raises(SpecError, match=r"budget.timeout_minutes: .*28-day"):
        check_budget(28 * 24 * 60 + 1)
