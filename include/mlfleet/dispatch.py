"""A round's batches as each backend's task arguments: what the DAG maps its three batch tasks over.

The sweep's backend gets one entry per batch; the other two get empty lists, so their mapped
tasks are skipped. Switching backend is configuration: the DAG holds all three tasks.
`send=False` builds the same arguments without uploading anything (`mlfleet plan`).
"""

from __future__ import annotations

import json
from typing import Any

from mlfleet.config import Settings
from mlfleet.sweep import batch_job


def local_batches(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(batches) if context["backend"] == "local" else []


def _upload_config(settings: Settings, context: dict[str, Any], batch: dict[str, Any], job: dict[str, Any]) -> None:
    """The batch's config channel; a retry rewrites the same bytes to the same key."""
    from mlfleet.backends import naming, object_store
    from mlfleet.training.entrypoint import config_of

    uri = naming.config_uri(str(settings.object_store_uri), context["experiment"], context["run_id"], batch["batch_id"])
    object_store.put_bytes(settings, json.dumps(config_of(job), sort_keys=True).encode(), uri)


def sagemaker_jobs(context: dict[str, Any], batches: list[dict[str, Any]], *, settings: Settings,
                   send: bool = True) -> list[dict[str, Any]]:
    """BatchTrainingJobOperator arguments per batch (the CreateTrainingJob request under `config`)."""
    if context["backend"] != "sagemaker":
        return []
    from mlfleet.backends import sagemaker

    jobs = []
    for batch in batches:
        job = batch_job(context, batch)
        if send:
            _upload_config(settings, context, batch, job)
        jobs.append({
            "config": sagemaker.training_job_request(context=context, batch=batch, job=job, settings=settings),
            "results_dir": context["results_dir"],
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


def waiter_attempts(context: dict[str, Any], settings: Settings) -> int:
    import math

    seconds = context["spec"].get("budget", {}).get("timeout_minutes", 60) * 60
    if settings.sagemaker_spot:
        seconds += settings.sagemaker_spot_wait_seconds
    return math.ceil(seconds / settings.sagemaker_check_interval) + 10  # + queueing and start-up


def kubernetes_pods(context: dict[str, Any], batches: list[dict[str, Any]], *, settings: Settings,
                    send: bool = True) -> list[dict[str, Any]]:
    """BatchPodOperator arguments per batch (KubernetesPodOperator's, plus where results land)."""
    if context["backend"] != "kubernetes":
        return []
    from mlfleet.backends import kubernetes

    pods = []
    for batch in batches:
        job = batch_job(context, batch)
        if send:
            _upload_config(settings, context, batch, job)
        arguments = kubernetes.pod_arguments(context=context, batch=batch, job=job, settings=settings)
        pods.append({**arguments, "results_dir": context["results_dir"], "batch_id": batch["batch_id"]})
    return pods


def plan(spec_source: Any, *, settings: Settings, backend: str | None = None, dag_run_id: str | None = None) -> dict[str, Any]:
    """What a sweep would send, sending nothing: the first round's batches and each batch's request.

    The run id is the one the given Airflow run would use, else one derived from the spec, so
    planning twice prints the same job and pod names. Bayes searches show round 0 as proposed by
    an in-memory study (later rounds depend on scores).
    """
    import hashlib
    import tempfile
    from pathlib import Path

    from mlfleet import sweep
    from mlfleet.trials import expand

    spec = sweep.validate(spec_source, settings=settings, backend=backend)
    backend = backend or spec.backend or settings.backend
    digest = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:8]
    run_id = sweep.run_id_from_airflow(dag_run_id) if dag_run_id else f"plan-{digest}"
    with tempfile.TemporaryDirectory(prefix="mlfleet-plan-") as scratch:
        context = sweep.prepare(spec, settings=settings, run_id=run_id, backend=backend,
                                results_root=Path(scratch), send=False)
        if spec.search.strategy == "bayes":
            from mlfleet import tuning

            study = tuning.open_study(storage=None, name=f"plan-{digest}", seed=spec.cv.seed)
            trials = tuning.ask(study, spec, min(spec.search.batch_size or spec.budget.max_parallel, spec.search.n_trials or 0))
        else:
            trials = expand(spec)
        batches = sweep.plan_round(spec, trials, round_index=0, settings=settings, backend=backend)
        entries = [{"batch_id": b["batch_id"], "resources": b["resources"], "predicted_seconds": b["predicted_seconds"],
                    "trials": [t["trial_id"] for t in b["trials"]], "request": _request(context, b, settings)}
                   for b in batches]
    return {"experiment": spec.name, "run_id": run_id, "backend": backend, "rounds": context["rounds"],
            "n_trials": context["n_trials"], "data_sha256": context["data_sha256"],
            "data_uri": context.get("data_uri"), "batches": entries}


def _request(context: dict[str, Any], batch: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from mlfleet.training.entrypoint import config_of, hyperparameters_of

    job = batch_job(context, batch)
    if context["backend"] == "sagemaker":
        from mlfleet.backends import sagemaker

        return {"CreateTrainingJob": sagemaker.training_job_request(context=context, batch=batch, job=job, settings=settings),
                "config_channel": config_of(job)}
    if context["backend"] == "kubernetes":
        from mlfleet.backends import kubernetes

        arguments = kubernetes.pod_arguments(context=context, batch=batch, job=job, settings=settings)
        return {"pod": kubernetes.pod_manifest(arguments), "config_channel": config_of(job)}
    return {"command": ["python", "-m", "mlfleet.training.entrypoint", "train", "--root",
                        f"{context['results_dir']}/batches/{batch['batch_id']}"],
            "hyperparameters": hyperparameters_of(job), "config_channel": config_of(job)}
