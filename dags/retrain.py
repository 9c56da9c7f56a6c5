"""
### retrain

Triggered by `drift_monitor` with conf `{"model": <registered model>, "drifted_features": [...]}`.

1. **prepare** turns the champion's spec into a Bayesian search (numeric grids become ranges),
   warm-starts a new Optuna study (SQLite) from the champion's, and holds out the newest window.
2. **rounds**: Optuna asks `MLFLEET_RETRAIN_BATCH_SIZE` trials per round (TPE), one mapped task
   per batch runs them in parallel, and their scores are told back before the next round.
3. **decide** scores challenger and champion on the same holdout; the MLflow `champion` alias
   moves only when the challenger wins. Both scores and the decision are recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, chain, dag, task

from mlfleet import airflow_tasks as tasks
from mlfleet.airflow_rounds import trial_rounds
from mlfleet.retraining import RETRAIN_MAX_ROUNDS


@dag(
    dag_id="retrain",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlfleet", "retraining"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=10)},
    params={
        "model": Param("churn-baseline", type="string", minLength=1, description="registered model to retrain"),
        "drifted_features": Param([], type="array", description="features the drift check flagged"),
        "drift_report": Param(None, type=["null", "string"], description="the drift report behind this run"),
    },
)
def retrain():
    @task
    def prepare(params=None, run_id=None):
        return tasks.prepare_retrain(params, run_id)

    @task(trigger_rule="none_failed")
    def decide(context):
        return tasks.decide(context)

    context = prepare()
    chain(trial_rounds(context, rounds=RETRAIN_MAX_ROUNDS), decide(context))


retrain()
