"""A round's batches as each backend's task arguments: what the DAG maps its three batch tasks over.

The sweep's backend gets one entry per batch; the other two get empty lists, so their mapped
tasks are skipped. Switching backend is configuration: the DAG holds all three tasks.
`send=False` builds the same arguments without uploading anything (`mlfleet plan`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlfleet.config import Settings
from mlfleet.sweep.batches import batch_job
from mlfleet.sweep.context import SweepContext


def local_batches(context: SweepContext, batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(batches) if context.backend == "local" else []


def _upload_config(settings: Settings, context: SweepContext, batch: dict[str, Any], job: dict[str, Any]) -> None:
    """The batch's config channel; a retry rewrites the same bytes to the same key."""
    from mlfleet.backends import naming, object_store
    from mlfleet.training.entrypoint import config_of

    uri = naming.config_uri(str(settings.object_store_uri), context.experiment, context.run_id, batch["batch_id"])
    object_store.put_bytes(settings, json.dumps(config_of(job), sort_keys=True).encode(), uri)


def sagemaker_jobs(context: SweepContext, batches: list[dict[str, Any]], *, settings: Settings,
                   send: bool = True) -> list[dict[str, Any]]:
    """BatchTrainingJobOperator arguments per batch (the CreateTrainingJob request under `config`)."""
    if context.backend != "sagemaker":
        return []
    from mlfleet.backends import sagemaker

    jobs = []
    for batch in batches:
        job = batch_job(context, batch)
        if send:
            _upload_config(settings, context, batch, job)
        jobs.append({
            "config": sagemaker.training_job_request(context=context, batch=batch, job=job, settings=settings),
            "results_dir": context.results_dir,
            "batch_id": batch["batch_id"],
            "aws_conn_id": settings.aws_conn_id,
            "region_name": settings.aws_region,
            "deferrable": settings.sagemaker_deferrable,
            "check_interval": settings.sagemaker_check_interval,
            "print_log": settings.sagemaker_print_log,
            # The trigger gives up after max_attempts polls: cover the whole budget (and a spot wait).
            "max_attempts": waiter_attempts(context, settings),
        })
    return jobs


def waiter_attempts(context: SweepContext, settings: Settings) -> int:
    """Polls the SageMaker trigger may make: the whole budget (and a spot wait), plus queueing and start-up."""
    seconds = context.timeout_minutes * 60
    if settings.sagemaker_spot:
        seconds += settings.sagemaker_spot_wait_seconds
    return math.ceil(seconds / settings.sagemaker_check_interval) + 10  # + queueing and start-up


def kubernetes_pods(context: SweepContext, batches: list[dict[str, Any]], *, settings: Settings,
                    send: bool = True) -> list[dict[str, Any]]:
    """BatchPodOperator arguments per batch (KubernetesPodOperator's, plus where results land)."""
    if context.backend != "kubernetes":
        return []
    from mlfleet.backends import kubernetes

    pods = []
    for batch in batches:
        job = batch_job(context, batch)
        if send:
            _upload_config(settings, context, batch, job)
        arguments = kubernetes.pod_arguments(context=context, batch=batch, job=job, settings=settings)
        pods.append({**arguments, "results_dir": context.results_dir, "batch_id": batch["batch_id"]})
    return pods
