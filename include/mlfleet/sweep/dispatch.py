"""A batch as its remote backend's operator arguments: what `TrialBatchOperator` hands the provider.

Pure but for the upload of the batch's config channel; `send=False` builds the same arguments
without uploading anything (`mlfleet plan`, and a task resumed after a deferral).
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlfleet.config import Settings
from mlfleet.sweep.batches import batch_job
from mlfleet.sweep.context import SweepContext


def _upload_config(settings: Settings, context: SweepContext, batch: dict[str, Any], job: dict[str, Any]) -> None:
    """The batch's config channel; a retry rewrites the same bytes to the same key."""
    from mlfleet.backends import naming, object_store
    from mlfleet.training.entrypoint import config_of

    uri = naming.config_uri(str(settings.object_store_uri), context.experiment, context.run_id, batch["batch_id"])
    object_store.put_bytes(settings, json.dumps(config_of(job), sort_keys=True).encode(), uri)


def sagemaker_job(context: SweepContext, batch: dict[str, Any], *, settings: Settings,
                  send: bool = True) -> dict[str, Any]:
    """BatchTrainingJobOperator arguments for one batch (the CreateTrainingJob request under `config`)."""
    from mlfleet.backends import sagemaker

    job = batch_job(context, batch)
    if send:
        _upload_config(settings, context, batch, job)
    return {
        "config": sagemaker.training_job_request(context=context, batch=batch, job=job, settings=settings),
        "results_dir": context.results_dir,
        "results_conn_id": context.store_conn_id,
        "batch_id": batch["batch_id"],
        "aws_conn_id": settings.aws_conn_id,
        "region_name": settings.aws_region,
        "deferrable": settings.sagemaker_deferrable,
        "check_interval": settings.sagemaker_check_interval,
        "print_log": settings.sagemaker_print_log,
        # The trigger gives up after max_attempts polls: cover the whole budget (and a spot wait).
        "max_attempts": waiter_attempts(context, settings),
    }


def waiter_attempts(context: SweepContext, settings: Settings) -> int:
    """Polls the SageMaker trigger may make: the whole budget (and a spot wait), plus queueing and start-up."""
    seconds = context.timeout_minutes * 60
    if settings.sagemaker_spot:
        seconds += settings.sagemaker_spot_wait_seconds
    return math.ceil(seconds / settings.sagemaker_check_interval) + 10


def kubernetes_pod(context: SweepContext, batch: dict[str, Any], *, settings: Settings,
                   send: bool = True) -> dict[str, Any]:
    """BatchPodOperator arguments for one batch (KubernetesPodOperator's, plus where results land)."""
    from mlfleet.backends import kubernetes

    job = batch_job(context, batch)
    if send:
        _upload_config(settings, context, batch, job)
    arguments = kubernetes.pod_arguments(context=context, batch=batch, job=job, settings=settings)
    return {**arguments, "results_dir": context.results_dir, "results_conn_id": context.store_conn_id,
            "batch_id": batch["batch_id"]}
