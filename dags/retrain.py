"""
### retrain

Triggered by `drift_monitor` with conf `{"model": <registered model>, "drifted_features": [...]}`.

1. **prepare** turns the champion's spec into a Bayesian search (numeric grids become ranges),
   warm-starts a new Optuna study from the champion's, holds out the newest window, and asks
   the first `MLFLEET_RETRAIN_BATCH_SIZE` trials (TPE).
2. **run_batch**: one mapped task per batch runs them in parallel.
3. **end_round**: until `MLFLEET_RETRAIN_TRIALS` trials have run, triggers the next round as a run
   of this DAG (conf `sweep`, `round`), whose prepare tells Optuna the scores so far and asks
   again. After the last round it decides: challenger and champion scored on the same holdout;
   the MLflow `champion` alias moves only when the challenger wins. Both scores and the decision
   are recorded.
"""

from __future__ import annotations

from mlfleet.airflow.dag_defaults import batch_timeout, mlfleet_dag, task_timeout
from mlfleet.airflow.params import retrain_params
from mlfleet.airflow.retrain_tasks import DecideRetrain, prepare
from mlfleet.airflow.rounds import sweep_round

DAG_ID = "retrain"


# As experiment_sweep: batches get the longest batch any spec may ask for, prepare an ordinary task's.
@mlfleet_dag(dag_id=DAG_ID, doc_md=__doc__, schedule=None, tag="retraining", execution_timeout=batch_timeout(),
             params=retrain_params())
def retrain():
    sweep_round(prepare.override(execution_timeout=task_timeout())(), dag_id=DAG_ID, end=DecideRetrain)


retrain()
