"""Import the libraries mlfleet's tasks need once, in the Airflow process that forks the task processes.

On the LocalExecutor the scheduler forks its workers when it starts, and each task's supervisor
forks the task process from a worker (no new interpreter), so whatever the scheduler imported
first every task process already has; the Celery worker's prefork pool forks its children from
`airflow celery worker` in the same way. Stock, each `prepare`, `run_batch` and `end_round` imports
pandas, pyarrow, scikit-learn, Optuna and MLflow itself, on every round of every sweep. Loading
them once before the fork is gunicorn's `preload_app`, for the same reason.

Airflow runs `airflow_local_settings.py` in every process as it imports itself (its documented
door for start-up code); the project's (config/airflow_local_settings.py) calls
`preload_for_this_process`. ``MLFLEET_PRELOAD`` names the commands that preload, so one
environment serves every component: `scheduler` (LocalExecutor), `celery worker` (Celery). Unset,
nothing is imported. Because this runs inside `import airflow`, only modules that do not import
Airflow are listed (one that did would find it half-initialised); the unit tests check that.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

log = logging.getLogger(__name__)

# Comma-separated Airflow commands whose process preloads, e.g. "scheduler" or "celery worker".
PRELOAD_VAR = "MLFLEET_PRELOAD"
# Comma-separated module names that replace PRELOAD_MODULES (empty: none).
MODULES_VAR = "MLFLEET_PRELOAD_MODULES"

# What a sweep's prepare, propose and run_batch import (pandas reads Parquet through
# pyarrow.dataset; the quick-start specs' builtin datasets come from sklearn.datasets).
STEP_MODULES = (
    "numpy", "pandas", "pyarrow.parquet", "pyarrow.dataset", "sklearn.model_selection", "sklearn.metrics",
    "sklearn.datasets",
    "mlfleet.sweep", "mlfleet.sweep.prepare", "mlfleet.backends.local",
    "mlfleet.training.entrypoint", "mlfleet.training.cv", "mlfleet.training.zoo", "sklearn.linear_model",
    "sklearn.ensemble", "joblib",
)
# What end_round (finalize, and a bayes round's ask and tell) imports besides: most of it MLflow
# and its database stores.
FINALIZE_MODULES = (
    "optuna", "mlflow", "mlflow.sklearn", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store", "plotly.graph_objects", "plotly.io",
    "mlfleet.sweep.finalize", "mlfleet.results", "mlfleet.tuning",
)
PRELOAD_MODULES = STEP_MODULES + FINALIZE_MODULES


def matching_command(argv: Sequence[str], commands: str) -> str | None:
    """Which of ``commands`` ("scheduler,celery worker") the process `airflow <argv[1:]>` runs, if any.

    A command matches when its words are the first arguments: `airflow scheduler --skip-serve-logs`
    matches "scheduler", `airflow celery worker -q x` matches "celery worker", neither matches "celery".
    """
    args = list(argv[1:])
    for command in commands.split(","):
        words = command.split()
        if words and args[: len(words)] == words:
            return " ".join(words)
    return None


def preload_modules(environ: Mapping[str, str]) -> tuple[str, ...]:
    """``MLFLEET_PRELOAD_MODULES`` (comma-separated) if set, else PRELOAD_MODULES."""
    configured = environ.get(MODULES_VAR)
    if configured is None:
        return PRELOAD_MODULES
    return tuple(name.strip() for name in configured.split(",") if name.strip())


def preload(names: Sequence[str]) -> list[str]:
    """Import each module; returns the ones that failed (logged, not raised: the task that needs
    one raises its error where it belongs, and a failure here must not stop Airflow starting)."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a missing optional library must not stop the caller
            log.warning("mlfleet preload: could not import %s (%s); the tasks will import it themselves", name, err)
            failed.append(name)
    return failed


@contextmanager
def _logged_to_stderr() -> Iterator[None]:
    """Airflow configures logging after the local settings: until then show this module's records."""
    if logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = True


def preload_for_this_process(*, argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Preload when this process's command is one ``MLFLEET_PRELOAD`` names; returns what was imported.

    Called from airflow_local_settings.py with ``sys.argv`` and ``os.environ``. Every other process
    (api-server, dag-processor, triggerer, `airflow dags test`, a task pod) imports nothing.
    """
    command = matching_command(argv, environ.get(PRELOAD_VAR, ""))
    if command is None:
        return ()
    with _logged_to_stderr():
        started = time.perf_counter()
        names = preload_modules(environ)
        failed = set(preload(names))
        done = tuple(name for name in names if name not in failed)
        log.info("mlfleet preload: imported %d module(s) in %.1f s for `airflow %s`; the task processes it forks inherit them",
                 len(done), time.perf_counter() - started, command)
    return done
