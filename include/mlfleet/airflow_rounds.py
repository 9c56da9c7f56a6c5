"""The sweep's rounds as Airflow tasks, shared by experiment_sweep and retrain.

The provider operators are imported at module top on purpose: DAG files import this module at
their top, so Airflow's DAG processor pre-imports it once (`parsing_pre_import_modules`) instead
of in every parse.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, chain, task

from mlfleet import airflow_tasks as tasks
from mlfleet.backends.kubernetes_operator import BatchPodOperator
from mlfleet.backends.sagemaker_operator import BatchTrainingJobOperator


def trial_rounds(context: Any, *, rounds: int) -> Any:
    """Wire `rounds` × (propose -> one mapped task per batch -> record) after `context`.

    Each round holds one mapped task per backend (local processes, SageMaker training jobs,
    Kubernetes pods); the sweep's backend gets the batches and the others map over nothing and are
    skipped, so switching backend is configuration. Airflow has no loops, so a DAG holds its
    maximum number of rounds; a round with nothing to propose skips its batch tasks. Returns the
    last record task.
    """
    @task(trigger_rule="none_failed")
    def propose_round(context: dict[str, Any], round_index: int) -> list[dict[str, Any]]:
        return tasks.propose(context, round_index)

    @task
    def for_local(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return tasks.local_batches(context, batches)

    @task
    def for_sagemaker(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return tasks.sagemaker_jobs(context, batches)

    @task
    def for_kubernetes(context: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return tasks.kubernetes_pods(context, batches)

    @task
    def run_trial_batch(context: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        return tasks.run_batch(context, batch)

    @task(trigger_rule="none_failed")
    def record_round(context: dict[str, Any]) -> int:
        return tasks.record(context)

    previous = context
    for index in range(rounds):
        with TaskGroup(group_id=f"round_{index}"):
            batches = propose_round.override(task_id="propose")(context, index)
            local = run_trial_batch.override(task_id="run_local").partial(context=context).expand(
                batch=for_local.override(task_id="local_batches")(context, batches))
            jobs = BatchTrainingJobOperator.partial(task_id="run_sagemaker").expand_kwargs(
                for_sagemaker.override(task_id="sagemaker_jobs")(context, batches))
            pods = BatchPodOperator.partial(task_id="run_kubernetes").expand_kwargs(
                for_kubernetes.override(task_id="kubernetes_pods")(context, batches))
            told = record_round.override(task_id="record")(context)
            chain(previous, batches)
            chain([local, jobs, pods], told)
        previous = told
    return previous
