"""The pod of one batch, as KubernetesPodOperator's own `build_pod_request_obj` makes it from
`pod_arguments`: valid against the Kubernetes OpenAPI schemas (kubernetes-validate, strict) and
against the syntax those schemas leave as free strings (`manifest_problems`)."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import kubernetes_validate
import pytest

from backend_inputs import DATA_URI, make_batch, make_context, planned_batches
from mlfleet.backends import kubernetes, naming
from mlfleet.config import Settings
from mlfleet.spec import SpecError
from mlfleet.sweep import batch_job
from mlfleet.training.entrypoint import hyperparameters_of

K8S_VERSION = "1.30"
BATCH_URI = "s3://bucket/prefix/experiments/churn-baseline/20261123T000000-5a6e/batches/r0-abcdef0123"
IMAGE = "registry.example.com/mlfleet-trial:1.0"
DEDICATED = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def k8s_settings() -> Settings:
    return Settings(object_store_uri="s3://bucket/prefix", trial_image=IMAGE, aws_region="eu-west-1",
                    kubernetes_node_selector={"pool": "trials"}, kubernetes_tolerations=[DEDICATED])


def arguments_for(settings: Settings, *, gpu: int = 0, batch_id: str = "r0-abcdef0123", **context_changes: Any) -> dict[str, Any]:
    context, batch = make_context("kubernetes", **context_changes), make_batch(gpu=gpu, batch_id=batch_id)
    return kubernetes.pod_arguments(context=context, batch=batch, job=batch_job(context, batch), settings=settings)


def manifest_for(settings: Settings, **changes: Any) -> dict[str, Any]:
    return kubernetes.pod_manifest(arguments_for(settings, **changes))


@pytest.fixture(scope="module")
def cpu_manifest(k8s_settings: Settings) -> dict[str, Any]:
    return manifest_for(k8s_settings)


@pytest.fixture(scope="module")
def gpu_manifest(k8s_settings: Settings) -> dict[str, Any]:
    return manifest_for(k8s_settings, gpu=1)


def base_container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in manifest["spec"]["containers"] if c["name"] == "base"]
    return container


def assert_valid(manifest: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(manifest, K8S_VERSION, strict=True) == K8S_VERSION
    assert kubernetes.manifest_problems(manifest) == []


@pytest.mark.parametrize("which", ["cpu_manifest", "gpu_manifest"])
def test_manifests_are_valid(which: str, request: pytest.FixtureRequest) -> None:
    assert_valid(request.getfixturevalue(which))


def test_every_planned_batch_gives_a_valid_pod(k8s_settings: Settings) -> None:
    context = make_context("kubernetes")
    manifests = [kubernetes.pod_manifest(kubernetes.pod_arguments(context=context, batch=b, job=batch_job(context, b),
                                                                  settings=k8s_settings))
                 for b in planned_batches(k8s_settings, "kubernetes")]
    assert len({m["metadata"]["name"] for m in manifests}) == len(manifests) == 2
    assert sorted("nvidia.com/gpu" in base_container(m)["resources"]["limits"] for m in manifests) == [False, True]
    for manifest in manifests:
        assert_valid(manifest)


def test_cpu_pod_snapshot(cpu_manifest: dict[str, Any]) -> None:
    metadata, spec = cpu_manifest["metadata"], cpu_manifest["spec"]
    assert (cpu_manifest["apiVersion"], cpu_manifest["kind"]) == ("v1", "Pod")
    assert (metadata["name"], metadata["namespace"]) == ("churn-baseline-94b73ddc6f", "mlfleet")
    # KPO adds its own labels (airflow_version; dag/task/run ids when it has a context) to ours.
    assert metadata["labels"].items() >= {
        "app.kubernetes.io/name": "mlfleet-trial",
        "app.kubernetes.io/part-of": "mlfleet",
        "mlfleet.io/experiment": "churn-baseline",
        "mlfleet.io/run": "20261123T000000-5a6e",
        "mlfleet.io/batch": "r0-abcdef0123",
    }.items()
    assert {k: spec.get(k) for k in ("restartPolicy", "activeDeadlineSeconds", "serviceAccountName", "nodeSelector",
                                     "tolerations")} == {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": 1800,
        "serviceAccountName": "mlfleet-trial",
        "nodeSelector": {"pool": "trials"},
        "tolerations": [DEDICATED],
    }
    container = base_container(cpu_manifest)
    assert {k: container.get(k) for k in ("image", "imagePullPolicy", "command", "args", "env", "resources")} == {
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "mlfleet.training.entrypoint"],
        "args": [
            "train",
            "--hyperparameters",
            '{"cv_folds": "5", "cv_seed": "0", "metric": "roc_auc", "target": "churned", "task": "classification"}',
            "--channel", f"train={DATA_URI}",
            "--channel", f"config={BATCH_URI}/config/",
            "--output", f"{BATCH_URI}/",
            "--xcom",
        ],
        "env": [
            {"name": "MLFLEET_WORKERS", "value": "2"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
        ],
        "resources": {"requests": {"cpu": "2", "memory": "4096Mi"}, "limits": {"memory": "4096Mi"}},
    }
    # The result comes back through KPO's XCom sidecar, which shares the /airflow/xcom volume.
    assert [c["name"] for c in spec["containers"]] == ["base", "airflow-xcom-sidecar"]
    assert {"mountPath": "/airflow/xcom", "name": "xcom"} in container["volumeMounts"]


def test_gpu_pod_asks_for_gpus_and_gpu_nodes(gpu_manifest: dict[str, Any]) -> None:
    resources = base_container(gpu_manifest)["resources"]
    assert resources["limits"] == {"memory": "16384Mi", "nvidia.com/gpu": "1"}
    assert resources["requests"] == {"cpu": "4", "memory": "16384Mi"}
    assert gpu_manifest["spec"]["nodeSelector"] == {"pool": "trials", "nvidia.com/gpu.present": "true"}
    assert gpu_manifest["spec"]["tolerations"] == [DEDICATED, GPU_TOLERATION]


def test_cpu_pod_has_no_gpu_limit_selector_or_toleration(cpu_manifest: dict[str, Any]) -> None:
    text = json.dumps(cpu_manifest)
    assert "nvidia.com/gpu" not in text
    default = manifest_for(Settings(object_store_uri="s3://bucket/prefix"))
    assert not default["spec"].get("nodeSelector") and not default["spec"].get("tolerations")
    assert "nvidia.com/gpu" not in json.dumps(default)


def test_gpu_selector_and_tolerations_come_from_settings(k8s_settings: Settings) -> None:
    settings = k8s_settings.model_copy(update={
        "kubernetes_gpu_node_selector": {"accelerator": "a100"},
        "kubernetes_gpu_tolerations": [{"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoExecute"}],
        "kubernetes_image_pull_policy": "Always",
        "kubernetes_namespace": "trials",
    })
    manifest = manifest_for(settings, gpu=2)
    assert_valid(manifest)
    assert manifest["spec"]["nodeSelector"] == {"pool": "trials", "accelerator": "a100"}
    assert manifest["spec"]["tolerations"][1] == {"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoExecute"}
    assert base_container(manifest)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert base_container(manifest)["imagePullPolicy"] == "Always"
    assert manifest["metadata"]["namespace"] == "trials"


def test_rebuilding_gives_the_same_pod_and_names_follow_the_batch(k8s_settings: Settings, cpu_manifest: dict[str, Any]) -> None:
    arguments = arguments_for(k8s_settings)
    assert arguments == arguments_for(k8s_settings)
    assert json.loads(json.dumps(arguments)) == arguments  # travels through XCom
    assert kubernetes.pod_manifest(arguments) == cpu_manifest
    assert cpu_manifest["metadata"]["name"] == naming.job_name(
        experiment="churn-baseline", run_id="20261123T000000-5a6e", batch_id="r0-abcdef0123")
    other = manifest_for(k8s_settings, batch_id="r0-abcdef0124")
    assert other["metadata"]["name"] != cpu_manifest["metadata"]["name"]
    assert other["metadata"]["labels"]["mlfleet.io/batch"] == "r0-abcdef0124"


def test_hyperparameters_argument_is_the_jobs(k8s_settings: Settings) -> None:
    context, batch = make_context("kubernetes"), make_batch()
    arguments = arguments_for(k8s_settings)["arguments"]
    assert json.loads(arguments[arguments.index("--hyperparameters") + 1]) == hyperparameters_of(batch_job(context, batch))


def test_an_experiment_name_ending_in_a_hyphen_gives_a_valid_pod(k8s_settings: Settings) -> None:
    manifest = manifest_for(k8s_settings, experiment="churn-")
    assert_valid(manifest)
    assert manifest["metadata"]["labels"]["mlfleet.io/experiment"] == "churn"


@pytest.mark.parametrize("budget, seconds", [({"timeout_minutes": 30}, 1800), ({}, 3600), ({"timeout_minutes": 0.001}, 1)])
def test_active_deadline_from_the_budget(budget: dict[str, Any], seconds: int, k8s_settings: Settings) -> None:
    spec = {**make_context("kubernetes").spec, "budget": budget}
    assert arguments_for(k8s_settings, spec=spec)["active_deadline_seconds"] == seconds


@pytest.mark.parametrize("resources, expected", [
    ({"cpu": 2, "memory_gb": 4, "gpu": 0}, {"requests": {"cpu": "2", "memory": "4096Mi"}, "limits": {"memory": "4096Mi"}}),
    ({"cpu": 0.5, "memory_gb": 1.5, "gpu": 0}, {"requests": {"cpu": "0.5", "memory": "1536Mi"}, "limits": {"memory": "1536Mi"}}),
    ({"cpu": 8, "memory_gb": 32, "gpu": 2},
     {"requests": {"cpu": "8", "memory": "32768Mi"}, "limits": {"memory": "32768Mi", "nvidia.com/gpu": "2"}}),
])
def test_container_resources(resources: dict[str, Any], expected: dict[str, Any]) -> None:
    assert kubernetes.container_resources(resources) == expected


def test_pod_arguments_need_an_object_store() -> None:
    with pytest.raises(SpecError, match="^backend: kubernetes needs an object store: set MLFLEET_OBJECT_STORE_URI="):
        arguments_for(Settings(object_store_uri=None))


# What kubernetes-validate checks, and what only manifest_problems does ---------------------------

def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


# The OpenAPI schemas type these as plain strings: a pod with any of them passes kubernetes-validate
# and is refused by the API server only at creation time. manifest_problems refuses it at plan time.
SCHEMA_BLIND = {
    "label value": (_set(["metadata", "labels", "mlfleet.io/experiment"], "-churn"), "label mlfleet.io/experiment='-churn'"),
    "long label value": (_set(["metadata", "labels", "mlfleet.io/batch"], "b" * 64), "label mlfleet.io/batch="),
    "label key": (_set(["metadata", "labels", "Bad_Prefix/x"], "y"), "label key 'Bad_Prefix/x'"),
    "toleration effect": (_set(["spec", "tolerations", 0, "effect"], "NoScheduleX"), "spec.tolerations[0].effect 'NoScheduleX'"),
    "toleration operator": (_set(["spec", "tolerations", 0, "operator"], "In"), "spec.tolerations[0].operator 'In'"),
    "image pull policy": (_set(["spec", "containers", 0, "imagePullPolicy"], "Sometimes"),
                          "spec.containers[0].imagePullPolicy 'Sometimes'"),
    "restart policy": (_set(["spec", "restartPolicy"], "Sometimes"), "spec.restartPolicy 'Sometimes'"),
    "pod name": (_set(["metadata", "name"], "Churn_Baseline"), "metadata.name 'Churn_Baseline'"),
    "namespace": (_set(["metadata", "namespace"], "ML_Fleet"), "metadata.namespace 'ML_Fleet'"),
    "gpu request above limit": (_set(["spec", "containers", 0, "resources", "requests", "nvidia.com/gpu"], "2"),
                                "nvidia.com/gpu request must equal its limit"),
}


@pytest.mark.parametrize("case", SCHEMA_BLIND)
def test_manifest_problems_catch_what_the_schema_lets_through(case: str, gpu_manifest: dict[str, Any]) -> None:
    mutate, words = SCHEMA_BLIND[case]
    manifest = copy.deepcopy(gpu_manifest)
    mutate(manifest)
    assert kubernetes_validate.validate(manifest, K8S_VERSION, strict=True) == K8S_VERSION
    problems = kubernetes.manifest_problems(manifest)
    assert len(problems) == 1 and words in problems[0], problems


@pytest.mark.parametrize("mutate", [_set(["spec", "bogus"], 1), _set(["metadata", "labels", "a"], 5),
                                    _set(["spec", "activeDeadlineSeconds"], "1800")],
                         ids=["unknown field", "label not a string", "deadline not an integer"])
def test_kubernetes_validate_catches_structure(mutate: Callable[[dict[str, Any]], None], cpu_manifest: dict[str, Any]) -> None:
    manifest = copy.deepcopy(cpu_manifest)
    mutate(manifest)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_a_retry_gets_its_own_pod_name_and_the_same_identity_labels(k8s_settings: Settings) -> None:
    """Failed pods are kept for debugging, so try 2 must not collide with try 1's pod name."""
    from types import SimpleNamespace

    from mlfleet.backends.kubernetes_operator import BatchPodOperator

    arguments = arguments_for(k8s_settings)

    def pod_for(try_number: int):
        ti = SimpleNamespace(dag_id="experiment_sweep", task_id="run_batch", map_index=0,
                             try_number=try_number, run_id="manual__2026-11-23T10:00:00+00:00")
        operator = BatchPodOperator(task_id="run_batch", results_dir=None, batch_id=None, **arguments)
        return operator.build_pod_request_obj({"ti": ti, "run_id": ti.run_id, "dag": SimpleNamespace()}, dry_run=True)

    first, second = pod_for(1), pod_for(2)
    assert first.metadata.name == arguments["name"]
    assert second.metadata.name == f"{arguments['name']}-t2"
    assert first.metadata.labels["map_index"] == second.metadata.labels["map_index"] == "0"
    assert first.metadata.labels["dag_id"] == "experiment_sweep"


@pytest.mark.parametrize("which", ["cpu_manifest", "gpu_manifest"])
def test_the_pod_runs_as_the_trial_images_user_with_no_privileges(which: str, request: pytest.FixtureRequest) -> None:
    """Not root, no capability, no privilege escalation, the runtime's seccomp profile: for the trial
    container and KPO's XCom sidecar alike (a valid pod, so the schemas accept every field)."""
    manifest = request.getfixturevalue(which)
    assert_valid(manifest)
    pod = manifest["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == pod["runAsGroup"] == kubernetes.TRIAL_UID != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in manifest["spec"]["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert context["runAsNonRoot"] is True and not context.get("privileged"), container["name"]


def test_the_trial_image_has_a_non_root_user_that_owns_the_entrypoints_root() -> None:
    """The Dockerfile's `trial` stage ends as the pod's user, and /opt/ml (where the entrypoint writes)
    is that user's."""
    import re
    from pathlib import Path

    dockerfile = (Path(__file__).parents[3] / "Dockerfile").read_text()
    trial = dockerfile.split("AS trial", 1)[1].split("\nFROM ", 1)[0]
    users = re.findall(r"^USER (\S+)", trial, flags=re.M)
    assert users and users[-1] == f"{kubernetes.TRIAL_UID}:{kubernetes.TRIAL_UID}"
    assert re.search(rf"--uid {kubernetes.TRIAL_UID}\b", trial) and "/opt/ml" in trial
