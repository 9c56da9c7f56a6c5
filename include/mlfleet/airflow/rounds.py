"""The sweep's rounds as Airflow tasks, shared by experiment_sweep and retrain.

The provider operators are imported at module top: DAG files import this module at their top.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, chain, task

from mlfleet.backends.kubernetes_operator import BatchPodOperator
from mlfleet.backends.sagemaker_operator import BatchTrainingJobOperator
from mlfleet.config import get_settings
from mlfleet.sweep import SweepContext


@task(trigger_rule="none_failed")
def propose(sweep_ref: dict[str, str], round_index: int) -> list[dict[str, Any]]:
    from mlfleet.sweep import propose as propose_round

    return propose_round(SweepContext.load(sweep_ref), round_index=round_index, settings=get_settings())


@task
def local_batches(sweep_ref: dict[str, str], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlfleet.sweep import dispatch

    return dispatch.local_batches(SweepContext.load(sweep_ref), batches)


@task
def sagemaker_jobs(sweep_ref: dict[str, str], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlfleet.sweep import dispatch

    return dispatch.sagemaker_jobs(SweepContext.load(sweep_ref), batches, settings=get_settings())


@task
def kubernetes_pods(sweep_ref: dict[str, str], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mlfleet.sweep import dispatch

    return dispatch.kubernetes_pods(SweepContext.load(sweep_ref), batches, settings=get_settings())


@task
def run_local(sweep_ref: dict[str, str], batch: dict[str, Any]) -> dict[str, Any]:
    from mlfleet.sweep import run_batch

    return run_batch(SweepContext.load(sweep_ref), batch, settings=get_settings())


@task(trigger_rule="none_failed")
def record(sweep_ref: dict[str, str]) -> int:
    from mlfleet.sweep import record as record_round

    return record_round(SweepContext.load(sweep_ref), settings=get_settings())


def trial_rounds(sweep_ref: Any, *, rounds: int) -> Any:
    """Wire `rounds` × (propose -> one mapped task per batch -> record) after `sweep_ref`.

    Each round holds one mapped task per backend (local processes, SageMaker training jobs,
    Kubernetes pods); the sweep's backend gets the batches and the others map over nothing and are
    skipped, so switching backend is configuration. Airflow has no loops, so a DAG holds its
    maximum number of rounds; a round with nothing to propose skips its batch tasks. Returns the
    last record task.
    """
    previous = sweep_ref
    for index in range(rounds):
        with TaskGroup(group_id=f"round_{index}"):
            batches = propose(sweep_ref, index)
            local = run_local.partial(sweep_ref=sweep_ref).expand(batch=local_batches(sweep_ref, batches))
            jobs = BatchTrainingJobOperator.partial(task_id="run_sagemaker").expand_kwargs(
                sagemaker_jobs(sweep_ref, batches))
            pods = BatchPodOperator.partial(task_id="run_kubernetes").expand_kwargs(kubernetes_pods(sweep_ref, batches))
            told = record(sweep_ref)
            chain(previous, batches)
            chain([local, jobs, pods], told)
        previous = told
    return previous
