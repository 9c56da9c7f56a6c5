"""What a sweep's steps import, loaded once in a process that then forks a process per step.

A forked process starts with everything its parent imported, where a new one spends seconds
importing pandas, scikit-learn, Optuna and MLflow again. `mlfleet up`'s executor loads these before
Airflow forks its workers (mlfleet.airflow.executor); `mlfleet sweep` loads them before forking
each step (mlfleet.sweep.runner). Importing runs no fit, so the only other threads it leaves are
the libraries' idle pools (OpenBLAS, Arrow's jemalloc), which stop or lock themselves around a
fork (pthread_atfork): forking after imports alone is what gunicorn's `preload_app` does too.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

# What a sweep's prepare, propose and run_batch import, and the training process a local batch
# forks from its step (mlfleet.backends.local) runs.
STEP_MODULES = (
    "numpy", "pandas", "pyarrow.parquet", "sklearn.model_selection", "sklearn.metrics",
    "mlfleet.sweep", "mlfleet.sweep.prepare", "mlfleet.backends.local",
    "mlfleet.training.entrypoint", "mlfleet.training.cv", "mlfleet.training.zoo", "sklearn.linear_model",
    "sklearn.ensemble", "joblib", "setproctitle",
)
# What finalize (and a bayes round's ask and tell) imports besides: 2-3 s on 2 cores, most of it
# MLflow and its database stores, which each process finalize forks would otherwise open too.
FINALIZE_MODULES = (
    "optuna", "mlflow", "mlflow.sklearn", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store", "plotly.graph_objects",
    "mlfleet.sweep.finalize", "mlfleet.results", "mlfleet.tuning",
)
SWEEP_MODULES = STEP_MODULES + FINALIZE_MODULES


def preload(names: tuple[str, ...]) -> list[str]:
    """Import each module; returns the ones that failed (logged, not raised: the step that needs
    one raises its error where it belongs)."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a missing optional library must not stop the caller
            log.warning("mlfleet: could not preload %s (%s); the steps will import it themselves", name, err)
            failed.append(name)
    return failed
