"""MLflow bookkeeping: a run per sweep with its trials (nested runs, and the whole table), the best model a
registry version with champion/challenger aliases.

Runs and versions carry `mlfleet.*` tags, and every writer looks them up first, so a retried
Airflow task finds what an earlier attempt logged instead of logging it twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlfleet.forking import alongside, call_beside

log = logging.getLogger(__name__)

SWEEP_TAG = "mlfleet.sweep_run_id"
ROLE_TAG = "mlfleet.role"  # sweep | trial | best: the sweep's parent run shares SWEEP_TAG with the others
TRIAL_TAG = "mlfleet.trial_id"
STATUS_TAG = "mlfleet.status"
ERROR_TAG = "mlfleet.error"
SCORE_TAG = "mlfleet.score"
CHAMPION, CHALLENGER = "champion", "challenger"
# On a version: "pending" from its registration until its first alias (champion or challenger) is set, then that alias.
FIRST_ALIAS_TAG = "mlfleet.first_alias"
# On a version: the champion it was compared with, written just before `promote_champion` moves the alias to it.
PROMOTED_FROM_TAG = "mlfleet.promoted_from"
REFERENCE_DIR, REFERENCE_FILE = "reference", "reference.parquet"  # the frame itself: versions before statistics
TRIAL_RUNS_TAG = "mlfleet.trial_runs"  # on the sweep's run: "<trial runs>/<trials>", e.g. "200/2000"
TRIALS_TABLE = "leaderboard.csv"  # the sweep run's artifact: every trial, as the results' leaderboard.csv
_MAX_PARAM, _MAX_TAG = 6000, 5000  # MLflow's param value limit; tags are capped well below theirs
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}  # import name -> PyPI name, where they differ
# Trial runs a process logs before another one (a fork, where this process may fork) shares the work.
_RUNS_PER_PROCESS = 50


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


def _forget_inherited_connections() -> None:
    """In a forked child: leave the parent's pooled MLflow database connections to the parent.

    MLflow's tracking and registry stores keep one SQLAlchemy engine per database for the
    process's life; a child forked after its parent used one (mlfleet.forking) would otherwise
    write through the parent's open SQLite connection. SQLAlchemy's recipe for a fork:
    `dispose(close=False)` in the child, which opens its own connections from then on and never
    touches the inherited ones.
    """
    for name in ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"):
        store = getattr(sys.modules.get(name), "SqlAlchemyStore", None)
        for engine in list(getattr(store, "_engine_map", {}).values()):
            engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_connections)


def _use_wal(database: Path) -> None:
    """Put a local SQLite store in WAL mode, which it keeps: a commit then writes the log, not a journal too.

    MLflow leaves SQLite in its default rollback-journal mode, where every one of a trial run's
    transactions creates, syncs and deletes a journal file: logging 200 trial runs took 12.6 s
    (9.8 CPU-s) that way and 7.5-8.8 s (6.8-8.0 CPU-s) in WAL mode (2 cores, 2026-12-02). WAL also
    lets the MLflow UI read while a sweep writes. Best effort: a store that cannot switch (another
    process holds it; a filesystem without shared memory) works as before.
    """
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as err:
        log.warning("MLflow store %s stays in its journal mode (%s): logging is slower, nothing else changes", database, err)


def _client(settings: Any) -> Any:
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_id(settings: Any, name: str) -> str:
    """Get or create the experiment, its artifacts at `settings.artifact_location`."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
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


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"refusing a quote in an MLflow filter value: {value!r}")
    return f"'{value}'"


def _find_runs(client: Any, exp_id: str, run_id: str, role: str) -> list[Any]:
    """Every active run of this sweep with this role, oldest first (so racing writers agree on one)."""
    query = f"tags.`{SWEEP_TAG}` = {_quoted(run_id)} and tags.`{ROLE_TAG}` = {_quoted(role)}"
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

    A trial run costs three SQLite transactions (~30 ms on 2 cores): 2,000 of them were a third of a
    sweep, while the table costs one file. Returns how many trial runs were created or completed.
    """
    from mlfleet.results.leaderboard import build_leaderboard, to_csv

    client = _client(settings)
    exp_id = experiment_id(settings, experiment)
    # Best first, failed last, the same rows and statuses as the sweep's leaderboard.
    board = build_leaderboard(experiment=experiment, run_id=run_id, metric=metric, results_uri="", rows=rows)
    trials = board["trials"]
    chosen = trials if len(trials) <= settings.mlflow_trial_runs else trials[:settings.mlflow_trial_runs]
    parents = _find_runs(client, exp_id, run_id, "sweep")
    parent = parents[0] if parents else client.create_run(
        exp_id, run_name=run_id, tags={SWEEP_TAG: run_id, ROLE_TAG: "sweep", "mlfleet.metric": metric})
    parent_id = parent.info.run_id
    client.log_text(parent_id, to_csv(board), TRIALS_TABLE)  # rewritten whole, so a retry leaves one copy
    client.set_tag(parent_id, TRIAL_RUNS_TAG, f"{len(chosen)}/{len(trials)}")
    # An attempt that died between creating a trial's run and terminating it left it RUNNING: it is
    # completed below, even when a smaller limit would no longer choose it, so nothing stays RUNNING.
    finished = {"FINISHED", "FAILED"}
    runs = _find_runs(client, exp_id, run_id, "trial")
    done = {r.data.tags.get(TRIAL_TAG) for r in runs if r.info.status in finished}
    partial = {r.data.tags.get(TRIAL_TAG): r.info.run_id for r in runs if r.info.status not in finished}
    chosen_ids = {row["trial_id"] for row in chosen} | set(partial)
    todo = list({row["trial_id"]: row for row in trials if row["trial_id"] in chosen_ids - done}.values())

    def log_share(share: list[dict[str, Any]]) -> int:
        for row in share:
            _log_trial_run(client, exp_id=exp_id, parent_id=parent_id, run_id=run_id, row=row, metric=metric,
                           child_id=partial.get(row["trial_id"]))
        return len(share)

    # Each run is Python work in MLflow's SQLAlchemy store, so more processes log more runs at once;
    # SQLite (WAL) takes their short write transactions one after the other.
    processes = max(1, min(os.cpu_count() or 1, len(todo) // _RUNS_PER_PROCESS))
    shares = [todo[k::processes] for k in range(processes)]
    mine, theirs = alongside(lambda: log_share(shares[0]), [call_beside(log_share, share=s) for s in shares[1:]])
    logged = mine + sum(theirs)
    if parent.info.status not in finished:
        client.set_terminated(parent_id, "FINISHED")
    return logged


def _pip_requirements(model: Any) -> list[str]:
    """Pin the packages the model's objects come from. MLflow's own inference re-imports the model
    in a subprocess (~15 s) and lists whatever that interpreter loaded (torch for a logistic regression)."""
    from importlib.metadata import PackageNotFoundError, version

    objects = [model, *getattr(model, "__dict__", {}).values()]
    if hasattr(model, "get_params"):
        objects += list(model.get_params(deep=True).values())
    # A fitted attribute brings its package in (the project's MLP keeps a torch network in `network_`).
    # mlfleet itself is not on PyPI: an MLP's loader needs the project installed anyway.
    roots = {type(o).__module__.split(".")[0] for o in objects} | {"sklearn", "cloudpickle"}
    pins = []
    for root in sorted(roots - {"builtins", "mlfleet"}):
        name = _DISTRIBUTIONS.get(root, root)
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def _version_info(client: Any, name: str, version: Any) -> dict[str, Any]:
    mv = client.get_model_version(name, str(version))
    alias = next((a for a in (CHAMPION, CHALLENGER, *mv.aliases) if a in mv.aliases), None)
    return {"name": name, "version": str(mv.version), "alias": alias, "model_uri": f"models:/{name}/{mv.version}",
            "run_id": mv.run_id, "tags": dict(mv.tags), "aliases": list(mv.aliases)}


def _versions_of_sweep(client: Any, name: str, run_id: str) -> list[Any]:
    query = f"name = {_quoted(name)} and tags.`{SWEEP_TAG}` = {_quoted(run_id)}"
    return sorted(client.search_model_versions(query), key=lambda mv: int(mv.version))


def register_model(
    *, settings: Any, experiment: str, run_id: str, model: Any, X_sample: Any, reference_statistics: dict[str, Any],
    tags: dict[str, str], score: float,
) -> dict[str, Any]:
    """Log + register the sweep's best model, with its training frame's statistics (JSON, see
    `mlfleet.drift.sketch.of_frame`) as its drift baseline; the first version of a name becomes
    `champion`, later ones `challenger` (promotion is the retraining DAG's decision). Once per sweep run_id.

    A version is registered with FIRST_ALIAS_TAG "pending", so a retry of an attempt that died
    between registering it and setting its alias finds it (by the sweep's tag) and sets the alias,
    instead of registering a second version or leaving a first model without `champion`."""
    import mlflow
    import mlflow.sklearn

    from mlfleet.results.reference import log_reference_statistics

    client = _client(settings)
    existing = _versions_of_sweep(client, experiment, run_id)
    if existing:
        if dict(existing[0].tags).get(FIRST_ALIAS_TAG) == "pending":
            _set_first_alias(settings, client, experiment, existing[0].version)
        return _version_info(client, experiment, existing[0].version)
    exp_id = experiment_id(settings, experiment)
    earlier = _find_runs(client, exp_id, run_id, "best")  # logged, then the task died before registering
    new_run = {"experiment_id": exp_id, "run_name": f"{run_id}-best", "tags": {SWEEP_TAG: run_id, ROLE_TAG: "best"}}
    run_kwargs = {"run_id": earlier[0].info.run_id} if earlier else new_run
    with mlflow.start_run(**run_kwargs):
        log_reference_statistics(reference_statistics)  # statistics, not rows: the drift check reads these
        mlflow.log_metric("score", float(score))
        # cloudpickle, not MLflow's default skops: skops cannot rebuild the MLP's torch tensors, its
        # import walks all of scikit-learn (10+ s, in every loader too), and the types it trusts on load
        # are read from the model's own MLmodel file, so it adds no safety for our own registry.
        info = mlflow.sklearn.log_model(model, name="model", input_example=X_sample,
                                        serialization_format="cloudpickle", pip_requirements=_pip_requirements(model))
    version_tags = {**{k: str(v) for k, v in tags.items()}, SWEEP_TAG: run_id, SCORE_TAG: repr(float(score)),
                    FIRST_ALIAS_TAG: "pending"}
    version = mlflow.register_model(info.model_uri, experiment, tags=version_tags).version
    _set_first_alias(settings, client, experiment, version)
    return _version_info(client, experiment, version)


def _set_first_alias(settings: Any, client: Any, name: str, version: str | int) -> None:
    """`champion` for a model's first version, `challenger` for a later one; then FIRST_ALIAS_TAG records it.

    An attempt that died after the alias but before the tag left the version holding it: kept as it is."""
    with alias_lock(settings):
        aliases = dict(client.get_registered_model(name).aliases)
        held = [alias for alias, holder in aliases.items() if str(holder) == str(version)]
        if held:
            alias = CHAMPION if CHAMPION in held else held[0]
        else:
            alias = CHAMPION if CHAMPION not in aliases else CHALLENGER
            client.set_registered_model_alias(name, alias, str(version))
        client.set_model_version_tag(name, str(version), FIRST_ALIAS_TAG, alias)


@contextlib.contextmanager
def alias_lock(settings: Any) -> Iterator[None]:
    """One alias writer at a time where every writer is on this machine: a local SQLite store.

    MLflow's registry has no compare-and-set on aliases, so a read-then-move is a race between
    two writers; on the embedded store a lock file beside the database makes it none. A tracking
    server has no such lock to take (see `promote_champion` for what remains there).
    """
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.aliases.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def version_of_sweep(settings: Any, name: str, run_id: str) -> dict[str, Any] | None:
    """The version of `name` that sweep (or retrain) `run_id` registered, found by its tag; None before it has."""
    client = _client(settings)
    found = _versions_of_sweep(client, name, run_id)
    return _version_info(client, name, found[0].version) if found else None


def alias_holder(settings: Any, name: str, alias: str) -> str | None:
    """The version that holds `alias` of registered model `name` now, or None."""
    registered = _registered(_client(settings), name)
    if registered is None or alias not in registered.aliases:
        return None
    return str(registered.aliases[alias])


def promote_champion(settings: Any, name: str, *, version: str | int, compared_with: str | int) -> dict[str, Any]:
    """Move `champion` to `version` only while it is still on `compared_with`, the version it beat.

    A compare-and-set, as near as MLflow allows: the holder is read right before the move and
    again right after it. Returns {"outcome", "champion"} (who holds it afterwards):
    "promoted" (also when `version` already holds it because an earlier attempt of this same
    promotion moved it, as PROMOTED_FROM_TAG shows); "stale" when another version holds it now
    (another retrain promoted meanwhile, or someone moved it), and nothing moves; "superseded" when
    another writer moved it again between this move and the re-read: logged as an error, and not
    undone (moving it back would undo their move, which came last).

    What remains: MLflow offers no atomic compare-and-set. On a local SQLite store every writer
    takes `alias_lock`, which closes the race. Against a tracking server two promotions that both
    read the old champion before either moves it can both move it, and the later wins without
    having been compared with the earlier; the window is one read and one write (milliseconds), and
    the earlier one records "superseded".
    """
    version, compared_with = str(version), str(compared_with)
    client = _client(settings)
    with alias_lock(settings):
        before = alias_holder(settings, name, CHAMPION)
        if before == version:
            tags = dict(client.get_model_version(name, version).tags)
            if tags.get(PROMOTED_FROM_TAG) == compared_with:
                return {"outcome": "promoted", "champion": version}
            return {"outcome": "stale", "champion": before}  # it got there by another way than this promotion
        if before != compared_with:
            return {"outcome": "stale", "champion": before}
        client.set_model_version_tag(name, version, PROMOTED_FROM_TAG, compared_with)
        client.set_registered_model_alias(name, CHAMPION, version)
        after = alias_holder(settings, name, CHAMPION)
    if after != version:
        log.error("champion of %s moved to v%s right after v%s was promoted over v%s: another writer moved it "
                  "without the registry's lock; left as it is", name, after, version, compared_with)
        return {"outcome": "superseded", "champion": after}
    return {"outcome": "promoted", "champion": version}


def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def champion(settings: Any, name: str) -> dict[str, Any] | None:
    """The `champion` version of registered model `name`, or None while there is none."""
    client = _client(settings)
    registered = _registered(client, name)
    if registered is None or CHAMPION not in registered.aliases:
        return None
    info = _version_info(client, name, registered.aliases[CHAMPION])
    return {**info, "alias": CHAMPION, "model_uri": f"models:/{name}@{CHAMPION}"}


def load_model(settings: Any, model_uri: str) -> Any:
    import mlflow.sklearn

    configure(settings)
    return mlflow.sklearn.load_model(model_uri)


def set_alias(settings: Any, name: str, alias: str, version: str | int) -> None:
    _client(settings).set_registered_model_alias(name, alias, str(version))


def record_version_tags(settings: Any, name: str, version: str | int, tags: dict[str, Any]) -> None:
    client = _client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def list_champions(settings: Any) -> list[str]:
    """Names of the registered models that have a champion: the ones the drift DAG watches."""
    client = _client(settings)
    names: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names += [rm.name for rm in page if CHAMPION in rm.aliases]
        token = page.token
        if not token:
            return sorted(names)


def registered_models(settings: Any) -> list[dict[str, Any]]:
    """Every registered model with its aliases (name -> version), for the models page."""
    client = _client(settings)
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        found += [{"name": rm.name, "aliases": dict(rm.aliases)} for rm in page]
        token = page.token
        if not token:
            return sorted(found, key=lambda m: m["name"])


def registered_versions(settings: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Every model version mlfleet registered ({"name", "version", "sweep_run_id", "tags"}), of one
    model or of all, by name then version: `register_model` tags each with the sweep that made it
    (SWEEP_TAG), so a model someone else registered in the same MLflow store is not among them."""
    client = _client(settings)
    query = f"tags.`{SWEEP_TAG}` LIKE '%'" + (f" and name = {_quoted(name)}" if name is not None else "")
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_model_versions(query, max_results=10_000, page_token=token)
        found += [{"name": mv.name, "version": str(mv.version), "sweep_run_id": dict(mv.tags).get(SWEEP_TAG),
                   "tags": dict(mv.tags)} for mv in page]
        token = page.token
        if not token:
            return sorted(found, key=lambda v: (v["name"], int(v["version"])))


def version_history(settings: Any, name: str) -> list[dict[str, Any]]:
    """Every version of a registered model, newest first, with its aliases, tags and creation time."""
    client = _client(settings)
    registered = _registered(client, name)
    if registered is None:
        return []
    # Searched versions come without their aliases: the registered model holds them (alias -> version).
    aliases: dict[str, list[str]] = {}
    for alias, version in sorted(dict(registered.aliases).items()):
        aliases.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name = {_quoted(name)}")
    return [{"version": str(mv.version), "aliases": aliases.get(str(mv.version), []), "tags": dict(mv.tags),
             "run_id": mv.run_id, "created_ms": int(mv.creation_timestamp or 0)}
            for mv in sorted(versions, key=lambda mv: int(mv.version), reverse=True)]


def trial_run_id(settings: Any, experiment: str, run_id: str, trial_id: str) -> dict[str, str] | None:
    """The MLflow run of one trial of a sweep ({"experiment_id", "run_id"}), if it was logged as a run."""
    client = _client(settings)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    query = (f"tags.`{SWEEP_TAG}` = {_quoted(run_id)} and tags.`{ROLE_TAG}` = 'trial' "
             f"and tags.`{TRIAL_TAG}` = {_quoted(trial_id)}")
    runs = client.search_runs([found.experiment_id], filter_string=query, max_results=1)
    return {"experiment_id": found.experiment_id, "run_id": runs[0].info.run_id} if runs else None
