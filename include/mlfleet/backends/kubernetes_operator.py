"""The cncf.kubernetes provider's KubernetesPodOperator for one trial batch.

Only two additions to the stock operator: arguments arrive as JSON (resources and tolerations as
dicts, since mapped arguments travel through XCom), and the pod's XCom result is written to the
batch's results location so the task returns the same small summary as the other backends.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from mlfleet.backends import batch_results


class BatchPodOperator(KubernetesPodOperator):
    """Run one trial batch in a pod built from `mlfleet.backends.kubernetes.pod_arguments`."""

    def __init__(self, *, results_dir: str | None, batch_id: str | None, results_conn_id: str | None = None,
                 container_resources: dict[str, Any] | k8s.V1ResourceRequirements | None = None, **kwargs: Any) -> None:
        if isinstance(container_resources, dict):
            container_resources = k8s.V1ResourceRequirements(**container_resources)
        super().__init__(container_resources=container_resources, **kwargs)
        self.results_dir = results_dir
        self.results_conn_id = results_conn_id
        self.batch_id = batch_id

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        """KPO's pod, named `<name>-t<try>` from the second try on.

        Failed pods are kept for debugging, so a retry needs its own name; the name still comes
        from the task's identity, and a restarted scheduler re-attaches by KPO's labels.
        """
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        ti = context.get("ti") if context else None
        try_number = getattr(ti, "try_number", 1) or 1
        if try_number > 1:
            pod.metadata.name = f"{self.name}-t{try_number}"
        return pod

    def execute(self, context: Any) -> dict[str, Any]:
        return self.store(super().execute(context))

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        return self.store(super().trigger_reentry(context, event))

    def store(self, result: dict[str, Any] | None) -> dict[str, Any]:
        """Write the rows the pod returned through the XCom sidecar; return the batch summary."""
        return store_pod_result(result, results_dir=self.results_dir, batch_id=self.batch_id, pod_name=self.name,
                                results_conn_id=self.results_conn_id)


def store_pod_result(result: dict[str, Any] | None, *, results_dir: str | None, batch_id: str | None,
                     pod_name: str | None, results_conn_id: str | None = None) -> dict[str, Any]:
    if not result or "results" not in result:
        raise RuntimeError(f"pod {pod_name} returned no results through XCom (got {result!r})")
    rows = result["results"]
    if results_dir and batch_id:
        batch_results.store_rows(results_dir, batch_id, rows, conn_id=results_conn_id, job_name=pod_name)
    return batch_results.summary(batch_id or str(pod_name), rows, job_name=pod_name,
                                 results_uri=result.get("results_uri"))
