"""The first step of a sweep: validate everything, then stage the training set once.

Nothing is written for a spec that fails validation; a retried `prepare` rewrites the same files.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator

from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec, SpecError, load_spec, parse_spec
from mlfleet.storage import (
    Location,
    bytes_sha256,
    display,
    is_object_path,
    parquet_bytes,
    write_bytes_atomic,
    write_json_atomic,
    write_json_once,
)
from mlfleet.backends.object_store import location
from mlfleet.sweep.context import CONTEXT_FILE, DATA_FILE, HOLDOUT_FILE, AirflowRun, SweepContext, experiments_root
from mlfleet.sweep.ids import new_run_id
from mlfleet.sweep.rounds import rounds_needed
from mlfleet.trials import count_trials, space_notice

# Kept beside the features in the staged set: the Feast entity key and timestamp (holdout windows).
ENTITY_COLUMNS = ("customer_id", "event_timestamp")

log = logging.getLogger(__name__)


def validate(spec_source: Any, *, settings: Settings, backend: str | None = None) -> ExperimentSpec:
    """Every check that needs no data: structure, scorer, params, backend and its settings, GPU."""
    from mlfleet.backends import check_backend
    from mlfleet.spec.validate import check_static

    spec = parse_spec(spec_source) if isinstance(spec_source, ExperimentSpec) else load_spec(spec_source)
    check_static(spec)
    check_sweep_state(settings)
    if spec.dataset.path:
        from mlfleet.sweep.datasets import check_data_path

        check_data_path(spec.dataset.path, settings)
    check_backend(spec, backend or spec.backend or settings.backend, settings=settings, cuda_available=_cuda_available)
    return spec


def check_sweep_state(settings: Settings) -> None:
    """With sweep state in the object store, every worker must also reach Optuna's and MLflow's
    stores: a journal or SQLite file under one worker's home would split a sweep's study."""
    if settings.sweep_state != "object_store":
        return
    field = "MLFLEET_SWEEP_STATE"
    if not settings.object_store_uri:
        raise SpecError(field, "object_store needs MLFLEET_OBJECT_STORE_URI=s3://bucket/prefix")
    if not settings.optuna_storage_url or settings.optuna_storage_url.startswith("sqlite:"):
        raise SpecError(field, "object_store needs MLFLEET_OPTUNA_STORAGE_URL, a database every worker reaches "
                               "(e.g. postgresql+psycopg2://user@host/db)")
    if settings.local_tracking:
        raise SpecError(field, "object_store needs MLFLEET_MLFLOW_TRACKING_URI, a tracking server or database "
                               "every worker reaches")


def claim_run_id(root: Location, *, salt: str) -> str:
    """A new run id whose results directory this call created: two sweeps of one spec started in the
    same second (two `mlfleet sweep`s) cannot share one. An Airflow run's id is deterministic
    instead, so that a retried prepare finds its own directory. An object store has no folders to
    create exclusively: there the id's digest (16 bits, salted with the pid and a random token) keeps two starts apart."""
    if is_object_path(root):
        return new_run_id(salt=f"{salt}.{os.getpid()}.{secrets.token_hex(4)}")
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = new_run_id(salt=f"{salt}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            (root / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id


# The Airflow run that calls prepare, for calls that reach it through a wrapper (retraining.prepare):
# the Airflow layer sets it around the call (mlfleet.airflow.sweep_tasks.start_round).
_STARTED_BY: ContextVar[AirflowRun | None] = ContextVar("mlfleet_started_by", default=None)


@contextmanager
def started_by(run: AirflowRun) -> Iterator[None]:
    """Within the block, prepare records `run` as the sweep's owner, as its `airflow_run` argument would."""
    token = _STARTED_BY.set(run)
    try:
        yield
    finally:
        _STARTED_BY.reset(token)


class SweepFolderTaken(RuntimeError):
    """Another run's sweep already lives in the folder this run's id maps to: refused, never shared."""


def check_folder_owner(results_dir: Location, owner: AirflowRun | None) -> None:
    """Refuse a sweep folder that another run started; an Airflow run takes a new folder first thing
    (`airflow_run.json`, created exclusively), so a retry of the same run finds its own and passes."""
    from mlfleet.sweep.progress import AIRFLOW_RUN_FILE

    owner_file = results_dir / AIRFLOW_RUN_FILE
    if not owner_file.exists() and not (results_dir / CONTEXT_FILE).exists():
        if owner is None or write_json_once(owner_file, owner.model_dump()):
            return
    recorded = _recorded_owner(results_dir)
    if recorded != owner:
        theirs = (f"Airflow run {recorded}" if isinstance(recorded, AirflowRun) else
                  f"a sweep with {recorded}" if recorded else "a sweep that no Airflow run started")
        ours = f"Airflow run {owner}" if owner else "a caller that is not an Airflow run"
        raise SweepFolderTaken(f"sweep folder {display(results_dir)} belongs to {theirs}; this prepare is {ours}. "
                               "Both map to one sweep id: trigger this run again with another run id")


def _recorded_owner(results_dir: Location) -> AirflowRun | str | None:
    """Who started the sweep in `results_dir` (its airflow_run.json, else its context), or what is unreadable."""
    from mlfleet.sweep.progress import AIRFLOW_RUN_FILE

    for name, key in ((AIRFLOW_RUN_FILE, None), (CONTEXT_FILE, "airflow_run")):
        path = results_dir / name
        if path.exists():
            try:
                data = json.loads(path.read_text())
                value = data if key is None else data.get(key)
                return None if value is None else AirflowRun.model_validate(value)
            except ValueError:
                return f"an unreadable {name}"
    return None


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def prepare(spec_source: Any, *, settings: Settings, run_id: str | None = None, holdout_days: int = 0, backend: str | None = None, results_root: Path | str | None = None,
            send: bool = True, airflow_run: AirflowRun | None = None) -> SweepContext:
    """Validate the spec against its data, then stage the training set; returns the saved context.

    Remote backends also get the training set in the object store, content-addressed (uploaded
    once, whichever sweep needs it). `send=False` (plan) computes every name but uploads nothing.
    `airflow_run` (or `started_by`) is the Airflow run preparing: recorded in the context, and a
    folder another run started is refused (SweepFolderTaken) before anything is written to it.
    """
    from mlfleet.spec.validate import check_target
    from mlfleet.sweep.continuation import write_token
    from mlfleet.sweep.datasets import feature_columns, load_frame

    spec = validate(spec_source, settings=settings, backend=backend)
    backend = backend or spec.backend or settings.backend
    frame = load_frame(spec, settings)
    features = feature_columns(spec, frame)
    check_target(spec, frame)
    keep = [c for c in ENTITY_COLUMNS if c in frame.columns]
    frame = frame[[*keep, *features, spec.target]]
    holdout = None
    if holdout_days and "event_timestamp" in frame.columns:
        import pandas as pd

        cutoff = frame["event_timestamp"].max() - pd.Timedelta(days=holdout_days)
        holdout, frame = frame[frame["event_timestamp"] > cutoff], frame[frame["event_timestamp"] <= cutoff]
        check_target(spec, frame)
    root = location(results_root, conn_id=settings.aws_conn_id) if results_root is not None else experiments_root(settings)
    root = root / spec.name  # every check passed: now write
    run_id = run_id or claim_run_id(root, salt=spec.name)
    results_dir = root / run_id
    owner = airflow_run or _STARTED_BY.get()
    check_folder_owner(results_dir, owner)
    write_token(results_dir)  # what the sweep's continuation runs prove themselves with
    data_dir = results_dir / "data"
    data = parquet_bytes(frame)  # hashed and written once, wherever the sweep's state lives
    data_path = write_bytes_atomic(data_dir / DATA_FILE, data)
    if holdout is not None:
        write_bytes_atomic(data_dir / HOLDOUT_FILE, parquet_bytes(holdout))
    remote: dict[str, str] = {}
    data_sha256 = bytes_sha256(data)
    if backend != "local":
        from mlfleet.backends import naming

        store = str(settings.object_store_uri)
        remote = {"data_uri": naming.dataset_uri(store, data_sha256, DATA_FILE),
                  "results_store_uri": naming.run_uri(store, spec.name, run_id)}
        if send:
            from mlfleet.backends import object_store

            object_store.put_bytes_once(settings, data, remote["data_uri"])
    n_trials = count_trials(spec)
    context = SweepContext(
        experiment=spec.name,
        run_id=run_id,
        results_dir=display(results_dir),
        spec=spec.model_dump(mode="json", exclude_none=True),
        backend=backend,
        features=features,
        n_rows=int(len(frame)),
        data_path=display(data_path),
        data_sha256=data_sha256,
        holdout_path=display(data_dir / HOLDOUT_FILE) if holdout is not None else None,
        study=f"{spec.name}.{run_id}",
        rounds=rounds_needed(spec, n_trials=n_trials),
        n_trials=n_trials,
        store_conn_id=settings.store_conn_id if is_object_path(results_dir) else None,
        airflow_run=owner,
        **remote,
    )
    write_json_atomic(results_dir / "spec.json", context.spec)
    log.info("%s %s: %d trial(s) will run in %d round(s)", spec.name, run_id, n_trials, context.rounds)
    notice = space_notice(strategy=spec.search.strategy, asked=spec.search.n_trials, running=n_trials)
    if notice:
        log.info("%s %s: %s", spec.name, run_id, notice)
    return context.save()
