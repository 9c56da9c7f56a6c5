"""
### experiment_sweep

Runs one experiment spec (models × search space × CV folds) as a parallel sweep.

1. **prepare**: loads the spec (`spec_file`, one of specs/*.yaml, or a pasted `spec`: YAML or JSON
   text or an object, never a path; it wins), applies the form's overrides (`backend`, `n_trials`,
   `max_parallel`, `timeout_minutes`), validates the result against its data, stages the training
   set and proposes the first round; a bad spec or override fails here, naming the field, before
   any trial.
2. **run_batch**: one mapped task per batch, trials packed by predicted runtime, every core of the
   worker busy; the backend (local processes, SageMaker training jobs, Kubernetes pods) comes from
   the spec or `MLFLEET_BACKEND`.
3. **end_round**: grid and random sweeps are one round. A bayes sweep runs
   `ceil(n_trials / batch_size)` rounds: until the last, end_round triggers the next round as a run
   of this DAG (conf `sweep`, `round`; run id `<experiment>__<sweep run>__round_NNNN`), whose
   prepare tells Optuna the scores so far and asks the next batch. After the last round it
   finalizes: leaderboard (JSON + CSV), parallel-coordinates plot, an MLflow run per trial and the
   best model registered in the MLflow registry; its XCom says where they are.
"""

from __future__ import annotations

from mlfleet.airflow.dag_defaults import batch_timeout, mlfleet_dag, task_timeout
from mlfleet.airflow.params import experiment_sweep_params
from mlfleet.airflow.rounds import sweep_round
from mlfleet.airflow.sweep_tasks import FinalizeSweep, prepare

DAG_ID = "experiment_sweep"


# Batches run as long as their spec's budget.timeout_minutes allows: the DAG's execution_timeout is
# the longest any spec may ask for (run_batch is mapped at run time); prepare gets an ordinary task's.
@mlfleet_dag(dag_id=DAG_ID, doc_md=__doc__, schedule=None, tag="experiments", max_active_runs=4,
             execution_timeout=batch_timeout(), params=experiment_sweep_params())
def experiment_sweep():
    sweep_round(prepare.override(execution_timeout=task_timeout())(), dag_id=DAG_ID, end=FinalizeSweep)


experiment_sweep()
