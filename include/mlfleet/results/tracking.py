"""MLflow tracking: a run per sweep with its trials (nested runs, and the whole table).

Runs carry `mlfleet.*` tags, and every writer looks them up first, so a retried Airflow task
finds what an earlier attempt logged instead of logging it twice. The model registry (versions,
champion/challenger aliases, promotion) is `mlfleet.results.registry`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SWEEP_TAG = "mlfleet.sweep_run_id"
ROLE_TAG = "mlfleet.role"  # sweep | trial | best: the sweep's parent run shares SWEEP_TAG with the others
TRIAL_TAG = "mlfleet.trial_id"
STATUS_TAG = "mlfleet.status"
ERROR_TAG = "mlfleet.error"
TRIAL_RUNS_TAG = "mlfleet.trial_runs"  # on the sweep's run: "<trial runs>/<trials>", e.g. "200/2000"
TRIALS_TABLE = "leaderboard.csv"  # the sweep run's artifact: every trial, as the results' leaderboard.csv
_MAX_PARAM, _MAX_TAG = 6000, 5000  # MLflow's param value limit; tags are capped well below theirs


def configure(settings: Any) -> None:
    """Point MLflow's fluent API (tracking and registry) at the project's store."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    _initialized(settings.tracking_uri)


_READY: set[str] = set()  # local stores this process has seen initialized


def _initialized(uri: str) -> None:
    """Let one process at a time make a local SQLite store's tables.

    MLflow creates them on first use, and several processes starting on a fresh store at once (two
    `mlfleet sweep`s, or parallel tasks) fail with "table ... already exists". So the first use in
    each process waits on a lock file beside the database.
    """
    if uri in _READY or not uri.startswith("sqlite:///"):
        return
    import fcntl

    from mlflow import MlflowClient

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates or migrates the tables
        _use_wal(database)
    _READY.add(uri)


def _use_wal(database: Path) -> None:
    """Put a local SQLite store in WAL mode, which it keeps: a commit then writes the log, not a journal too.

    MLflow leaves SQLite in its default rollback-journal mode, where every one of a trial run's
    transactions creates, syncs and deletes a journal file (docs/rounds.md has the timings). WAL
    also lets the MLflow UI read while a sweep writes. Best effort: a store that cannot switch
    (another process holds it; a filesystem without shared memory) works as before.
    """
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as err:
        log.warning("MLflow store %s stays in its journal mode (%s): logging is slower, nothing else changes", database, err)


def tracking_client(settings: Any) -> Any:
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_id(settings: Any, name: str) -> str:
    """Get or create the experiment, its artifacts at `settings.artifact_location`."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(settings)
    found = client.get_experiment_by_name(name)
    if found is None:
        location = settings.artifact_location
        if location == settings.artifact_root.as_uri():
            settings.artifact_root.mkdir(parents=True, exist_ok=True)
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by a concurrent task between our two calls
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"refusing a quote in an MLflow filter value: {value!r}")
    return f"'{value}'"


def find_runs(client: Any, exp_id: str, run_id: str, role: str) -> list[Any]:
    """Every active run of this sweep with this role, oldest first (so racing writers agree on one)."""
    query = f"tags.`{SWEEP_TAG}` = {quoted(run_id)} and tags.`{ROLE_TAG}` = {quoted(role)}"
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string=query, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _param_value(value: Any) -> str:
    if isinstance(value, (list, dict)):
        value = json.dumps(value, default=str)
    return str(value)[:_MAX_PARAM]


def _trial_batch(row: dict[str, Any], metric: str, now_ms: int) -> tuple[list[Any], list[Any]]:
    from mlflow.entities import Metric, Param

    params = {**(row.get("params") or {}), "model": row.get("model")}
    values = {f"mean_{metric}": row.get("mean_score"), f"std_{metric}": row.get("std_score"),
              "fit_seconds": row.get("fit_seconds")}
    if row.get("status") == "success":
        values.update({f"fold_{k}_{metric}": s for k, s in enumerate(row.get("fold_scores") or [], start=1)})
    metrics = [Metric(k, float(v), now_ms, 0) for k, v in values.items() if isinstance(v, (int, float))]
    return metrics, [Param(k, _param_value(v)) for k, v in params.items()]


def _log_trial_run(client: Any, *, exp_id: str, parent_id: str, run_id: str, row: dict[str, Any], metric: str,
                   child_id: str | None) -> None:
    """One nested run in three transactions (create with every tag, one batch, terminate): the fewest
    MLflow's client allows, since a run is always created RUNNING. `child_id` is a RUNNING run an earlier
    attempt left behind: it is filled in again (same values, so MLflow accepts the params twice)."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    status = row.get("status") or "failed"
    if child_id is None:
        tags = {MLFLOW_PARENT_RUN_ID: parent_id, SWEEP_TAG: run_id, ROLE_TAG: "trial", TRIAL_TAG: row["trial_id"],
                STATUS_TAG: status, ERROR_TAG: str(row.get("error") or "")[:_MAX_TAG]}
        child_id = client.create_run(exp_id, run_name=row["trial_id"], tags=tags).info.run_id
    metrics, params = _trial_batch(row, metric, int(time.time() * 1000))
    client.log_batch(child_id, metrics=metrics, params=params)  # the client splits batches over MLflow's limits
    client.set_terminated(child_id, "FINISHED" if status == "success" else "FAILED")


def log_trials(*, settings: Any, experiment: str, run_id: str, rows: list[dict[str, Any]], metric: str) -> int:
    """Log the sweep's parent run, with every trial in its `leaderboard.csv` artifact, and nested trial runs:
    one per trial up to `settings.mlflow_trial_runs` trials, the best that many (leaderboard order) above.

    A trial run costs three store transactions, while the table costs one file: so a large sweep's
    trials are all in the table and only the best are runs. Every run is logged by this process's
    one MLflow client. Returns how many trial runs were created or completed.
    """
    from mlfleet.results.leaderboard import build_leaderboard, to_csv

    client = tracking_client(settings)
    exp_id = experiment_id(settings, experiment)
    # Best first, failed last, the same rows and statuses as the sweep's leaderboard.
    board = build_leaderboard(experiment=experiment, run_id=run_id, metric=metric, results_uri="", rows=rows)
    trials = board["trials"]
    chosen = trials if len(trials) <= settings.mlflow_trial_runs else trials[:settings.mlflow_trial_runs]
    parents = find_runs(client, exp_id, run_id, "sweep")
    parent = parents[0] if parents else client.create_run(
        exp_id, run_name=run_id, tags={SWEEP_TAG: run_id, ROLE_TAG: "sweep", "mlfleet.metric": metric})
    parent_id = parent.info.run_id
    client.log_text(parent_id, to_csv(board), TRIALS_TABLE)  # rewritten whole, so a retry leaves one copy
    client.set_tag(parent_id, TRIAL_RUNS_TAG, f"{len(chosen)}/{len(trials)}")
    # An attempt that died between creating a trial's run and terminating it left it RUNNING: it is
    # completed below, even when a smaller limit would no longer choose it, so nothing stays RUNNING.
    finished = {"FINISHED", "FAILED"}
    runs = find_runs(client, exp_id, run_id, "trial")
    done = {r.data.tags.get(TRIAL_TAG) for r in runs if r.info.status in finished}
    partial = {r.data.tags.get(TRIAL_TAG): r.info.run_id for r in runs if r.info.status not in finished}
    chosen_ids = {row["trial_id"] for row in chosen} | set(partial)
    todo = list({row["trial_id"]: row for row in trials if row["trial_id"] in chosen_ids - done}.values())
    for row in todo:
        _log_trial_run(client, exp_id=exp_id, parent_id=parent_id, run_id=run_id, row=row, metric=metric,
                       child_id=partial.get(row["trial_id"]))
    if parent.info.status not in finished:
        client.set_terminated(parent_id, "FINISHED")
    return len(todo)


def trial_run_id(settings: Any, experiment: str, run_id: str, trial_id: str) -> dict[str, str] | None:
    """The MLflow run of one trial of a sweep ({"experiment_id", "run_id"}), if it was logged as a run."""
    client = tracking_client(settings)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    query = (f"tags.`{SWEEP_TAG}` = {quoted(run_id)} and tags.`{ROLE_TAG}` = 'trial' "
             f"and tags.`{TRIAL_TAG}` = {quoted(trial_id)}")
    runs = client.search_runs([found.experiment_id], filter_string=query, max_results=1)
    return {"experiment_id": found.experiment_id, "run_id": runs[0].info.run_id} if runs else None
