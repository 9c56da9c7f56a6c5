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

from airflow.sdk import chain

from mlfleet.airflow.dag_defaults import mlfleet_dag
from mlfleet.airflow.params import spec_param
from mlfleet.airflow.rounds import trial_rounds
from mlfleet.airflow.sweep_tasks import finalize, prepare
from mlfleet.sweep.rounds import SWEEP_MAX_ROUNDS


@mlfleet_dag(dag_id="experiment_sweep", doc_md=__doc__, schedule=None, tag="experiments", max_active_runs=4,
             params={"spec": spec_param("specs/churn-baseline.yaml")})
def experiment_sweep():
    sweep = prepare()
    chain(trial_rounds(sweep, rounds=SWEEP_MAX_ROUNDS), finalize(sweep))


experiment_sweep()
