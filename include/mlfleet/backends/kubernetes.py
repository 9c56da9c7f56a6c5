"""Kubernetes backend: a trial batch as KubernetesPodOperator arguments (a pure function of the batch).

The pod runs the trial image's entrypoint with the hyperparameters, channels and output prefix
on its command line; it reads the training set and writes checkpoints and results through the
object store, and hands its result dict to Airflow through KPO's XCom sidecar. The manifest is
what KPO's own `build_pod_request_obj` makes of those arguments, so `mlfleet plan` shows exactly
the pod that would be created.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlfleet.backends import naming
from mlfleet.backends.object_store import require_root
from mlfleet.config import Settings
from mlfleet.training.entrypoint import hyperparameters_of

if TYPE_CHECKING:
    from mlfleet.sweep.context import SweepContext

ENTRYPOINT = ["python", "-m", "mlfleet.training.entrypoint"]
# The trial image's user (Dockerfile, target `trial`): the pod runs as it, never as root, and gives up
# every capability and any way to gain privileges. The root filesystem stays writable: the
# entrypoint writes its SageMaker layout under /opt/ml and scratch files under /tmp.
TRIAL_UID = 1000
POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "runAsUser": TRIAL_UID, "runAsGroup": TRIAL_UID, "fsGroup": TRIAL_UID,
                        "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY_CONTEXT = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "privileged": False,
                              "capabilities": {"drop": ["ALL"]}}


def check_settings(settings: Settings) -> None:
    require_root(settings, "kubernetes")


def container_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """Requests from the spec's `resources`; GPUs as a limit (Kubernetes schedules extended resources by limit)."""
    requests = {"cpu": f"{resources['cpu']:g}", "memory": f"{int(resources['memory_gb'] * 1024)}Mi"}
    limits = {"memory": requests["memory"]}
    if resources["gpu"]:
        limits["nvidia.com/gpu"] = str(resources["gpu"])
    return {"requests": requests, "limits": limits}


def pod_arguments(
    *, context: SweepContext, batch: dict[str, Any], job: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments for one batch (JSON-serializable: they travel by XCom)."""
    check_settings(settings)
    experiment, run_id, batch_id = context.experiment, context.run_id, batch["batch_id"]
    where = naming.batch_uri(str(settings.object_store_uri), experiment, run_id, batch_id)
    gpu = batch["resources"]["gpu"] > 0
    workers = max(1, int(batch["resources"]["cpu"]))
    env = {"MLFLEET_WORKERS": str(workers), "PYTHONUNBUFFERED": "1"}
    if settings.aws_region:
        env["AWS_DEFAULT_REGION"] = settings.aws_region
    return {
        "name": naming.job_name(experiment=experiment, run_id=run_id, batch_id=batch_id),
        "random_name_suffix": False,
        "namespace": settings.kubernetes_namespace,
        "image": settings.trial_image,
        "image_pull_policy": settings.kubernetes_image_pull_policy,
        "cmds": list(ENTRYPOINT),
        "arguments": [
            "train",
            "--hyperparameters", json.dumps(hyperparameters_of(job), sort_keys=True),
            "--channel", f"train={context.data_uri}",
            "--channel", f"config={where}/config/",
            "--output", f"{where}/",
            "--xcom",
        ],
        "env_vars": env,
        "labels": naming.labels(experiment=experiment, run_id=run_id, batch_id=batch_id),
        "container_resources": container_resources(batch["resources"]),
        "node_selector": {**settings.kubernetes_node_selector, **(settings.kubernetes_gpu_node_selector if gpu else {})},
        "tolerations": [*settings.kubernetes_tolerations, *(settings.kubernetes_gpu_tolerations if gpu else [])],
        "service_account_name": settings.kubernetes_service_account,
        "security_context": POD_SECURITY_CONTEXT,
        "container_security_context": CONTAINER_SECURITY_CONTEXT,
        "xcom_sidecar_container_security_context": CONTAINER_SECURITY_CONTEXT,
        "kubernetes_conn_id": settings.kubernetes_conn_id,
        "in_cluster": settings.kubernetes_in_cluster,
        "reattach_on_restart": True,
        "do_xcom_push": True,
        "get_logs": True,
        "on_finish_action": "delete_succeeded_pod",
        "startup_timeout_seconds": settings.kubernetes_startup_timeout_seconds,
        "active_deadline_seconds": max(1, round(context.timeout_minutes * 60)),
        "deferrable": settings.kubernetes_deferrable,
    }


def pod_manifest(arguments: dict[str, Any], *, task_id: str = "run_pods", context: Any = None) -> dict[str, Any]:
    """The pod KPO would create for these arguments, in Kubernetes API form (KPO's dry run)."""
    from kubernetes.client import ApiClient

    from mlfleet.backends.kubernetes_operator import BatchPodOperator

    operator = BatchPodOperator(task_id=task_id, results_dir=None, batch_id=None, **arguments)
    pod = operator.build_pod_request_obj(context, dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)


# Enum values the OpenAPI schemas leave as free strings.
_ENUMS = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "restartPolicy": {"Always", "OnFailure", "Never"},
    "operator": {"Exists", "Equal"},
    "effect": {"NoSchedule", "PreferNoSchedule", "NoExecute"},
}


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """Checks kubernetes-validate does not make: label syntax, names, enum values, GPU limits."""
    problems = naming.label_problems(manifest["metadata"].get("labels") or {})
    name = manifest["metadata"].get("name", "")
    if not naming.is_pod_name(name):
        problems.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    namespace = manifest["metadata"].get("namespace")
    if namespace is not None and not naming.is_dns_label(namespace):
        problems.append(f"metadata.namespace {namespace!r} is not a DNS-1123 label")
    spec = manifest["spec"]
    if spec.get("restartPolicy") not in _ENUMS["restartPolicy"]:
        problems.append(f"spec.restartPolicy {spec.get('restartPolicy')!r} not in {sorted(_ENUMS['restartPolicy'])}")
    for i, toleration in enumerate(spec.get("tolerations") or []):
        for key in ("operator", "effect"):
            if key in toleration and toleration[key] not in _ENUMS[key]:
                problems.append(f"spec.tolerations[{i}].{key} {toleration[key]!r} not in {sorted(_ENUMS[key])}")
    for i, container in enumerate(spec.get("containers") or []):
        policy = container.get("imagePullPolicy")
        if policy is not None and policy not in _ENUMS["imagePullPolicy"]:
            problems.append(f"spec.containers[{i}].imagePullPolicy {policy!r} not in {sorted(_ENUMS['imagePullPolicy'])}")
        resources = container.get("resources") or {}
        gpu_request = (resources.get("requests") or {}).get("nvidia.com/gpu")
        gpu_limit = (resources.get("limits") or {}).get("nvidia.com/gpu")
        if gpu_request is not None and gpu_request != gpu_limit:
            problems.append(f"spec.containers[{i}].resources: nvidia.com/gpu request must equal its limit")
    return problems
