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

from airflow.sdk import Param, chain

from mlfleet.airflow.dag_defaults import mlfleet_dag
from mlfleet.airflow.retrain_tasks import decide, prepare
from mlfleet.airflow.rounds import trial_rounds
from mlfleet.sweep.rounds import RETRAIN_MAX_ROUNDS


@mlfleet_dag(dag_id="retrain", doc_md=__doc__, schedule=None, tag="retraining", params={
    "model": Param("churn-baseline", type="string", minLength=1, description="registered model to retrain"),
    "drifted_features": Param([], type="array", description="features the drift check flagged"),
    "drift_report": Param(None, type=["null", "string"], description="the drift report behind this run"),
})
def retrain():
    sweep = prepare()
    chain(trial_rounds(sweep, rounds=RETRAIN_MAX_ROUNDS), decide(sweep))


retrain()
