"""Refusals before any trial runs: a backend that cannot serve the spec as configured names the
spec field or the MLFLEET_* setting to change. And the typed settings those backends read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from backend_inputs import SPEC
from mlfleet.backends import check_backend
from mlfleet.config import DEFAULT_GPU_TOLERATIONS, DEFAULT_SAGEMAKER_INSTANCES, InstanceType, Settings
from mlfleet.spec import ExperimentSpec, SpecError, parse_spec

CPU_ONLY = {**SPEC, "models": [SPEC["models"][0]]}


def spec_with(**changes: Any) -> ExperimentSpec:
    return parse_spec({**SPEC, **changes})


def no_cuda() -> bool:
    return False


def refusal(spec: ExperimentSpec, backend: str, settings: Settings, cuda: bool = False) -> SpecError:
    with pytest.raises(SpecError) as error:
        check_backend(spec, backend, settings=settings, cuda_available=lambda: cuda)
    return error.value


@pytest.mark.parametrize("backend", ["local", "sagemaker", "kubernetes"])
def test_a_configured_backend_accepts_the_spec(backend: str, remote_settings: Settings) -> None:
    check_backend(parse_spec(CPU_ONLY), backend, settings=remote_settings, cuda_available=no_cuda)


@pytest.mark.parametrize("backend", ["sagemaker", "kubernetes"])
def test_remote_backends_serve_gpus_without_local_cuda(backend: str, remote_settings: Settings) -> None:
    def cuda() -> bool:
        raise AssertionError("a remote backend does not ask for this machine's GPU")

    check_backend(parse_spec(SPEC), backend, settings=remote_settings, cuda_available=cuda)


def test_unknown_backend(remote_settings: Settings) -> None:
    error = refusal(parse_spec(SPEC), "ray", remote_settings)
    assert error.field == "backend"
    assert str(error) == "backend: unknown backend 'ray'; choose one of local, sagemaker, kubernetes"


def test_gpu_on_local_without_cuda_names_the_model(remote_settings: Settings) -> None:
    error = refusal(parse_spec(SPEC), "local", remote_settings)
    assert error.field == "models[1].resources.gpu"
    assert "no GPU on this machine" in str(error) and "backend: kubernetes or sagemaker" in str(error)
    check_backend(parse_spec(SPEC), "local", settings=remote_settings, cuda_available=lambda: True)


def test_gpu_from_the_spec_wide_resources_names_that_field(remote_settings: Settings) -> None:
    spec = spec_with(models=CPU_ONLY["models"], resources={"cpu": 1, "memory_gb": 2, "gpu": 1})
    assert refusal(spec, "local", remote_settings).field == "resources.gpu"


@pytest.mark.parametrize("backend, missing, variable", [
    ("sagemaker", "object_store_uri", "MLFLEET_OBJECT_STORE_URI"),
    ("sagemaker", "sagemaker_role_arn", "MLFLEET_SAGEMAKER_ROLE_ARN"),
    ("kubernetes", "object_store_uri", "MLFLEET_OBJECT_STORE_URI"),
])
def test_remote_backend_without_its_settings(backend: str, missing: str, variable: str, remote_settings: Settings) -> None:
    error = refusal(parse_spec(CPU_ONLY), backend, remote_settings.model_copy(update={missing: None}))
    assert error.field == "backend"
    assert str(error).startswith(f"backend: {backend} needs ") and f"set {variable}=" in str(error)


def test_kubernetes_needs_no_role(remote_settings: Settings) -> None:
    settings = remote_settings.model_copy(update={"sagemaker_role_arn": None})
    check_backend(parse_spec(SPEC), "kubernetes", settings=settings, cuda_available=no_cuda)


def test_sagemaker_refuses_resources_no_instance_covers(remote_settings: Settings) -> None:
    big = {**SPEC["models"][1], "resources": {"cpu": 96, "memory_gb": 16, "gpu": 1}}
    error = refusal(spec_with(models=[SPEC["models"][0], big]), "sagemaker", remote_settings)
    assert error.field == "models[1].resources"
    assert "no instance in MLFLEET_SAGEMAKER_INSTANCE_TYPES covers cpu=96, memory_gb=16, gpu=1" in str(error)
    error = refusal(spec_with(models=CPU_ONLY["models"], resources={"cpu": 1, "memory_gb": 1000, "gpu": 0}),
                    "sagemaker", remote_settings)
    assert error.field == "resources"


def test_sagemaker_checks_against_the_configured_table(remote_settings: Settings) -> None:
    cpu_only = [InstanceType(instance_type="ml.c5.xlarge", cpu=4, memory_gb=8)]
    settings = remote_settings.model_copy(update={"sagemaker_instance_types": cpu_only})
    check_backend(parse_spec(CPU_ONLY), "sagemaker", settings=settings, cuda_available=no_cuda)
    error = refusal(parse_spec(SPEC), "sagemaker", settings)
    assert error.field == "models[1].resources" and "ml.c5.xlarge (4 cpu, 8 GB, 0 gpu)" in str(error)


# Settings the scale-out backends read --------------------------------------------------------------

def test_backend_settings_defaults() -> None:
    settings = Settings()
    assert settings.object_store_uri is None and settings.sagemaker_role_arn is None
    assert settings.sagemaker_instance_types == DEFAULT_SAGEMAKER_INSTANCES
    assert settings.kubernetes_namespace == "mlfleet" and settings.kubernetes_image_pull_policy == "IfNotPresent"
    assert settings.kubernetes_gpu_node_selector == {"nvidia.com/gpu.present": "true"}
    assert settings.kubernetes_gpu_tolerations == DEFAULT_GPU_TOLERATIONS
    assert settings.kubernetes_node_selector == {} and settings.kubernetes_tolerations == []
    assert settings.sagemaker_spot is False


def test_default_instance_table_is_ordered_smallest_first_within_each_kind() -> None:
    for gpu in (False, True):
        rows = [r for r in DEFAULT_SAGEMAKER_INSTANCES if (r.gpu > 0) is gpu]
        assert rows == sorted(rows, key=lambda r: (r.gpu, r.cpu, r.memory_gb))
    # CPU rows first, so a CPU batch gets a CPU machine whenever one covers it.
    assert [r.gpu > 0 for r in DEFAULT_SAGEMAKER_INSTANCES] == sorted(r.gpu > 0 for r in DEFAULT_SAGEMAKER_INSTANCES)


def test_dicts_and_lists_come_from_json_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    env = {
        "MLFLEET_OBJECT_STORE_URI": "s3://bucket/prefix/",
        "MLFLEET_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/x",
        "MLFLEET_SAGEMAKER_INSTANCE_TYPES": json.dumps([{"instance_type": "ml.c5.xlarge", "cpu": 4, "memory_gb": 8},
                                                        {"instance_type": "ml.p3.2xlarge", "cpu": 8, "memory_gb": 61, "gpu": 1}]),
        "MLFLEET_SAGEMAKER_SPOT": "true",
        "MLFLEET_KUBERNETES_NODE_SELECTOR": json.dumps({"pool": "trials"}),
        "MLFLEET_KUBERNETES_TOLERATIONS": json.dumps(tolerations),
        "MLFLEET_KUBERNETES_GPU_NODE_SELECTOR": json.dumps({"accelerator": "a100"}),
        "MLFLEET_KUBERNETES_GPU_TOLERATIONS": "[]",
        "MLFLEET_KUBERNETES_NAMESPACE": "ml-trials",
        "MLFLEET_KUBERNETES_IMAGE_PULL_POLICY": "Always",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.object_store_uri == "s3://bucket/prefix"
    assert settings.sagemaker_instance_types == [
        InstanceType(instance_type="ml.c5.xlarge", cpu=4, memory_gb=8),
        InstanceType(instance_type="ml.p3.2xlarge", cpu=8, memory_gb=61, gpu=1),
    ]
    assert settings.sagemaker_spot is True
    assert settings.kubernetes_node_selector == {"pool": "trials"} and settings.kubernetes_tolerations == tolerations
    assert settings.kubernetes_gpu_node_selector == {"accelerator": "a100"} and settings.kubernetes_gpu_tolerations == []
    assert (settings.kubernetes_namespace, settings.kubernetes_image_pull_policy) == ("ml-trials", "Always")


@pytest.mark.parametrize("field, value", [
    ("object_store_uri", "gs://bucket/prefix"),
    ("object_store_uri", "bucket/prefix"),
    ("object_store_uri", "s3://"),
    ("object_store_uri", "s3:///prefix"),
    ("kubernetes_namespace", "ML_Fleet"),
    ("kubernetes_namespace", "-mlfleet"),
    ("kubernetes_namespace", "n" * 64),
    ("kubernetes_image_pull_policy", "Sometimes"),
    ("sagemaker_instance_types", [{"instance_type": "m5.large", "cpu": 2, "memory_gb": 8}]),
    ("sagemaker_instance_types", [{"instance_type": "ml.m5.large", "cpu": 0, "memory_gb": 8}]),
    ("sagemaker_instance_types", [{"instance_type": "ml.m5.large", "cpu": 2, "memory_gb": 8, "gpus": 1}]),
])
def test_bad_values_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(**{field: value})
    assert error.value.errors()[0]["loc"][0] == field


def test_bad_env_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", "gs://bucket")
    with pytest.raises(ValidationError, match=r"object_store_uri must be an s3://bucket/prefix URI, got 'gs://bucket'"):
        Settings()


@pytest.mark.parametrize("value, stored", [("s3://bucket", "s3://bucket"), ("s3://bucket/", "s3://bucket"),
                                           ("s3://bucket/a/b//", "s3://bucket/a/b")])
def test_object_store_uri_is_stored_without_a_trailing_slash(value: str, stored: str) -> None:
    assert Settings(object_store_uri=value).object_store_uri == stored
