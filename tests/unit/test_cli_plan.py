"""`mlfleet plan`: the batches and the exact request per batch, valid for its service, sending nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlfleet.cli import app

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
name: plan-check
task: classification
target: target
metric: accuracy
dataset: {builtin: iris}
cv: {folds: 3, seed: 0}
models:
  - type: logistic_l1
    params: {C: [0.1, 1.0]}
  - type: mlp
    params: {hidden_units: [16]}
    resources: {cpu: 4, memory_gb: 16, gpu: 1}
resources: {cpu: 2, memory_gb: 4}
"""


@pytest.fixture
def remote(settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", "s3://plan-bucket/mlfleet")
    monkeypatch.setenv("MLFLEET_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/mlfleet-sagemaker")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def plan_json(path: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["plan", str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sagemaker_plan_is_valid_createtrainingjob_and_stable(remote: Path) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    first, second = plan_json(remote, "--backend", "sagemaker"), plan_json(remote, "--backend", "sagemaker")
    assert first == second  # same names, same requests
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    instances = {}
    for batch in first["batches"]:
        request = batch["request"]["CreateTrainingJob"]
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), report.generate_report()
        instances[batch["resources"]["gpu"]] = request["ResourceConfig"]["InstanceType"]
    assert instances == {0: "ml.m5.large", 1: "ml.g5.xlarge"}  # one machine shape per batch
    assert first["data_uri"].startswith("s3://plan-bucket/mlfleet/datasets/")


def test_kubernetes_plan_is_a_valid_pod_with_gpu_scheduling(remote: Path) -> None:
    import kubernetes_validate

    from mlfleet.backends.kubernetes import manifest_problems

    plan = plan_json(remote, "--backend", "kubernetes", "--dag-run-id", "manual__2026-11-23T10:00:00+00:00")
    assert plan["run_id"] != plan_json(remote, "--backend", "kubernetes")["run_id"]
    pods = {b["resources"]["gpu"]: b["request"]["pod"] for b in plan["batches"]}
    for pod in pods.values():
        kubernetes_validate.validate(pod, "1.30", strict=True)
        assert manifest_problems(pod) == []
        assert pod["metadata"]["labels"]["mlfleet.io/run"] == plan["run_id"]
    gpu = pods[1]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert "nvidia.com/gpu" not in pods[0]["spec"]["containers"][0]["resources"]["limits"]
    assert not pods[0]["spec"].get("nodeSelector")


def test_local_plan_takes_a_gpu_spec_only_where_cuda_is(remote: Path) -> None:
    import torch

    result = CliRunner().invoke(app, ["plan", str(remote), "--backend", "local"])
    if torch.cuda.is_available():
        assert result.exit_code == 0, result.output
    else:  # refused before any trial, not silently run on the CPU
        assert result.exit_code == 2
        assert "models[1].resources.gpu" in result.stderr and "no GPU" in result.stderr


def test_missing_backend_settings_name_the_variable(settings, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    result = CliRunner().invoke(app, ["plan", str(path), "--backend", "sagemaker"])
    assert result.exit_code == 2
    assert "MLFLEET_OBJECT_STORE_URI" in result.stderr
    result = CliRunner().invoke(app, ["plan", str(path), "--backend", "ecs"])
    assert result.exit_code == 2 and "unknown backend 'ecs'" in result.stderr


def test_sweep_command_sends_remote_specs_to_the_dag(remote: Path) -> None:
    result = CliRunner().invoke(app, ["sweep", str(remote)], env={"MLFLEET_BACKEND": "kubernetes"})
    assert result.exit_code == 2
    assert "experiment_sweep DAG" in result.stderr


README_SPEC = """\
name: wine-trees
task: classification
target: target
metric: accuracy
dataset: {builtin: wine}
cv: {folds: 5, seed: 0}
search: {strategy: random, n_trials: 20}
models:
  - type: lightgbm
    params: {num_leaves: {int: [8, 64]}, learning_rate: {float: [0.01, 0.3], log: true}}
  - type: random_forest
    params: {n_estimators: [100, 300], max_depth: [null, 8]}
budget: {max_parallel: 4, timeout_minutes: 30}
"""
FOUR_CONFIGURATIONS = README_SPEC.replace(
    "  - type: lightgbm\n    params: {num_leaves: {int: [8, 64]}, learning_rate: {float: [0.01, 0.3], log: true}}\n", "")


@pytest.mark.parametrize("strategy", ["random", "bayes"])
def test_plan_says_how_many_trials_will_run(settings, tmp_path: Path, strategy: str) -> None:
    readme, small = tmp_path / "wine.yaml", tmp_path / "small.yaml"
    readme.write_text(README_SPEC.replace("strategy: random", f"strategy: {strategy}"))
    small.write_text(FOUR_CONFIGURATIONS.replace("strategy: random", f"strategy: {strategy}"))
    full = plan_json(readme)
    assert (full["n_trials"], full["n_trials_asked"], full["notice"]) == (20, 20, None)
    assert sum(len(b["trials"]) for b in full["batches"]) == (20 if strategy == "random" else 4)  # bayes: round 0
    planned = plan_json(small)
    assert (planned["n_trials"], planned["rounds"]) == (4, 1)
    assert sum(len(b["trials"]) for b in planned["batches"]) == 4
    text = CliRunner().invoke(app, ["plan", str(small)])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].startswith("wine-trees on local: 4 trials, 1 round(s)")
    assert lines[1] == "note: the space holds 4 distinct configurations; running 4 of the 20 asked"
