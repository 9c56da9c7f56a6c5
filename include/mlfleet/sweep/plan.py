"""`mlfleet plan`: what a sweep would send, per batch, sending nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.storage import short_digest
from mlfleet.sweep.batches import batch_job
from mlfleet.sweep.context import SweepContext
from mlfleet.sweep.ids import run_id_from_airflow
from mlfleet.sweep.prepare import prepare, validate
from mlfleet.sweep.propose import plan_round
from mlfleet.sweep.rounds import batch_size
from mlfleet.trials import expand, space_notice


def plan(spec_source: Any, *, settings: Settings, backend: str | None = None, dag_run_id: str | None = None) -> dict[str, Any]:
    """What a sweep would send, sending nothing: the first round's batches and each batch's request.

    The run id is the one the given Airflow run would use, else one derived from the spec, so
    planning twice prints the same job and pod names. Bayes searches show round 0 as proposed by
    an in-memory study (later rounds depend on scores). `n_trials` is how many trials will run;
    `notice` says why when that is fewer than `n_trials_asked` (the space is smaller).
    """
    spec = validate(spec_source, settings=settings, backend=backend)
    backend = backend or spec.backend or settings.backend
    digest = short_digest(spec.model_dump_json(), 8)
    run_id = run_id_from_airflow(dag_run_id) if dag_run_id else f"plan-{digest}"
    with tempfile.TemporaryDirectory(prefix="mlfleet-plan-") as scratch:
        context = prepare(spec, settings=settings, run_id=run_id, backend=backend,
                          results_root=Path(scratch), send=False)
        if spec.search.strategy == "bayes":
            from mlfleet import tuning

            study = tuning.open_study(storage=None, name=f"plan-{digest}", seed=spec.cv.seed)
            trials = tuning.ask(study, spec, min(batch_size(spec), context.n_trials))
        else:
            trials = expand(spec)
        batches = plan_round(spec, trials, round_index=0, settings=settings, backend=backend)
        entries = [{"batch_id": b["batch_id"], "resources": b["resources"], "predicted_seconds": b["predicted_seconds"],
                    "trials": [t["trial_id"] for t in b["trials"]], "request": _request(context, b, settings)}
                   for b in batches]
    return {"experiment": spec.name, "run_id": run_id, "backend": backend, "rounds": context.rounds,
            "n_trials": context.n_trials, "n_trials_asked": spec.search.n_trials,
            "notice": space_notice(strategy=spec.search.strategy, asked=spec.search.n_trials, running=context.n_trials),
            "data_sha256": context.data_sha256,
            "data_uri": context.data_uri, "batches": entries}


def _request(context: SweepContext, batch: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from mlfleet.training.entrypoint import config_of, hyperparameters_of

    job = batch_job(context, batch)
    if context.backend == "sagemaker":
        from mlfleet.backends import sagemaker

        return {"CreateTrainingJob": sagemaker.training_job_request(context=context, batch=batch, job=job, settings=settings),
                "config_channel": config_of(job)}
    if context.backend == "kubernetes":
        from mlfleet.backends import kubernetes

        arguments = kubernetes.pod_arguments(context=context, batch=batch, job=job, settings=settings)
        return {"pod": kubernetes.pod_manifest(arguments), "config_channel": config_of(job)}
    return {"command": ["python", "-m", "mlfleet.training.entrypoint", "train", "--root",
                        f"{context.results_dir}/batches/{batch['batch_id']}"],
            "hyperparameters": hyperparameters_of(job), "config_channel": config_of(job)}
