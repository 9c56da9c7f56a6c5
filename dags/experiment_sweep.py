"""
### experiment_sweep

Runs one experiment spec (models × search space × CV folds) as a parallel sweep.

1. **prepare**: validates the `spec` param (an object in the trigger form, or a spec file path)
   against its data and stages the training set; a bad spec fails here, before any trial.
2. **rounds**: each round proposes batches of trials (grid/random: all in round 0; bayes: Optuna
   asks `batch_size` per round) and runs one mapped task per batch, trials packed by predicted
   runtime, every core of the worker busy.
3. **finalize**: leaderboard (JSON + CSV), parallel-coordinates plot, an MLflow run per trial and
   the best model registered in the MLflow registry.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, chain, dag, task

from mlfleet import airflow_tasks as tasks
from mlfleet.airflow_rounds import trial_rounds

SPEC_SCHEMA = {
    "description": "An experiment spec object (see experiment-spec.md) or the path of a spec YAML file.",
    "type": ["object", "string"],
    "minLength": 1,
    "required": ["name", "task", "target", "metric", "dataset", "models"],
}


@dag(
    dag_id="experiment_sweep",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["mlfleet", "experiments"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=10)},
    params={"spec": Param("specs/churn-baseline.yaml", **SPEC_SCHEMA)},
)
def experiment_sweep():
    @task
    def prepare(params=None, run_id=None):
        return tasks.prepare_sweep(params["spec"], run_id)

    @task(trigger_rule="none_failed")
    def finalize(context):
        return tasks.finalize(context)

    context = prepare()
    chain(trial_rounds(context, rounds=tasks.SWEEP_MAX_ROUNDS), finalize(context))


experiment_sweep()
