"""Airflow's LocalExecutor, with the libraries every mlfleet task imports loaded before it forks.

The LocalExecutor forks its worker processes from the scheduler when it starts, and each task's
supervisor forks the task process from a worker (no new interpreter), so whatever the scheduler has
imported by then every task process already has. Stock, that is Airflow alone: each `prepare`,
`run_batch` and `end_round` then imports pandas, pyarrow, scikit-learn, Optuna and MLflow itself,
on every round of every sweep. Measured on 2 cores (2026-12-02, an 8-trial random sweep through
`mlfleet up`, the second of two): `prepare` 2.9 s stock, 0.3 s preloaded; `end_round` 6.6 s and
1.9 s; the whole run 19.6 s and 10.2 s. Loading them once before the fork is gunicorn's
`preload_app`, for the same reason.

`mlfleet up` uses this executor (`AIRFLOW__CORE__EXECUTOR`); a deployment on the Celery or
Kubernetes executor gets the same from an image whose worker imports these modules before forking
(Celery's prefork pool) or not at all (a pod per task). MLFLEET_PRELOAD_MODULES replaces the list
(comma-separated; empty: preload nothing). A module that fails to import is logged and skipped:
the task that needs it will raise the error where it belongs.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# The task runtime's own modules (a new stack's first task otherwise imports them in its
# supervisor), then what a sweep's prepare, run_batch and end_round import.
PRELOAD_MODULES = (
    "airflow.sdk.execution_time.supervisor", "airflow.sdk.execution_time.task_runner",
    "numpy", "pandas", "pyarrow.parquet", "sklearn.model_selection", "sklearn.metrics", "optuna",
    "mlflow", "mlflow.sklearn", "mlfleet.sweep", "mlfleet.sweep.prepare", "mlfleet.sweep.finalize",
    "mlfleet.results", "mlfleet.tuning", "mlfleet.backends.local",
    # What the training process a local batch forks from its task (mlfleet.backends.local) runs.
    "mlfleet.training.entrypoint", "mlfleet.training.cv", "mlfleet.training.zoo", "sklearn.linear_model",
    "sklearn.ensemble", "joblib", "setproctitle",
)


def preload_modules() -> tuple[str, ...]:
    """MLFLEET_PRELOAD_MODULES (comma-separated) if set, else PRELOAD_MODULES."""
    configured = os.environ.get("MLFLEET_PRELOAD_MODULES")
    if configured is None:
        return PRELOAD_MODULES
    return tuple(name.strip() for name in configured.split(",") if name.strip())


def preload(names: tuple[str, ...]) -> list[str]:
    """Import each module; returns the ones that failed (logged, not raised)."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a missing optional library must not stop the scheduler
            log.warning("mlfleet executor: could not preload %s (%s); tasks will import it themselves", name, err)
            failed.append(name)
    return failed


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose forked workers (and so every task process) start with mlfleet's libraries loaded."""

    def start(self) -> None:
        if self.is_mp_using_fork:  # spawned workers (macOS) start a new interpreter: nothing to inherit
            started = time.perf_counter()
            names = preload_modules()
            failed = preload(names)
            log.info("mlfleet executor: preloaded %d module(s) in %.1f s before forking workers",
                     len(names) - len(failed), time.perf_counter() - started)
        super().start()
