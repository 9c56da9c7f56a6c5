"""A sweep's steps as plain functions: the DAG's tasks call them and `mlfleet sweep` chains them.

prepare (validate everything, stage the training set) -> propose (a round's batches) ->
run_batch (one mapped task each) -> record (tell Optuna) -> ... -> finalize (leaderboard, plot,
MLflow runs, registered model). Each step is idempotent: a retried task reuses what its first
attempt wrote, and nothing is written for a spec that fails validation. The steps share a typed
`SweepContext`, saved beside the results; tasks pass only its `SweepRef`.
"""

from mlfleet.sweep.batches import batch_dir, batch_job, collect_rows, run_batch
from mlfleet.sweep.context import SweepContext, SweepRef
from mlfleet.sweep.finalize import finalize, fit_best, register_fitted
from mlfleet.sweep.ids import new_run_id, run_id_from_airflow
from mlfleet.sweep.prepare import prepare, validate
from mlfleet.sweep.propose import plan_round, propose, proposed_trials, record
from mlfleet.sweep.runner import run_sweep

__all__ = [
    "SweepContext",
    "SweepRef",
    "batch_dir",
    "batch_job",
    "collect_rows",
    "finalize",
    "fit_best",
    "new_run_id",
    "plan_round",
    "prepare",
    "propose",
    "proposed_trials",
    "record",
    "register_fitted",
    "run_batch",
    "run_id_from_airflow",
    "run_sweep",
    "validate",
]
