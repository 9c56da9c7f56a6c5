"""experiment_sweep on Airflow's CeleryExecutor: where teams deploy the DAGs.

The stack (mlfleet.devstack.celery): `mlfleet up`'s components with the CeleryExecutor, PostgreSQL
metadata (and Celery result backend), a Redis broker and two `airflow celery worker` processes, each
with its own MLFLEET_HOME and AIRFLOW_HOME and its own name. Sweep state lives in the object store
(the moto server), MLflow and Optuna in PostgreSQL. A small grid sweep, triggered over REST, is
planned into two batches; each worker runs one task at a time, so the batches run on both workers,
and at least one of them on a worker that did not run `prepare`: it can only find the staged
training set and its batch's trials in the object store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mlfleet.devstack.processes import COMPONENTS
from services import AwsEmulator, create_database, group_gone, shared_state_env

pytestmark = pytest.mark.slow

DAG_ID = "experiment_sweep"
NAME = "iris-celery"
# 3 trials x 2 folds on iris, planned into 2 batches (below: one core a batch, a tiny batch target).
SPEC = {"name": NAME, "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
        "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0, 10.0]}}],
        "budget": {"max_parallel": 2, "timeout_minutes": 5}}
TRIALS = 3
# What a worker's MLFLEET_HOME may hold after a sweep: the fit history, kept per machine by design
# (mlfleet.fit_history), with SQLite's side files.
LOCAL_BY_DESIGN = ("history.db",)
# Files of a sweep's state: none may be under a worker's home.
SWEEP_FILES = {"context.json", "spec.json", "airflow_run.json", "train.parquet", "000.json", "results.json",
               "leaderboard.json", "leaderboard.csv", "parallel_coordinates.html", "registered.json"}



def _stored_keys(aws: AwsEmulator, prefix: str) -> set[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def _worker_logs(stack: Any) -> str:
    from mlfleet.devstack.processes import log_tail

    return "\n".join(f"--- {w.name} ---\n{log_tail(w.log, 30)}" for w in stack.workers)


def test_experiment_sweep_on_two_celery_workers_that_share_no_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, postgres_url: str, aws_server: AwsEmulator,
) -> None:
    from mlfleet.config import get_settings
    from mlfleet.devstack import celery
    from mlfleet.devstack.rest_client import ApiClient
    from mlfleet.sweep import run_id_from_airflow

    env = {
        **shared_state_env(home=tmp_path / "mlfleet", aws=aws_server, prefix="celery", postgres_url=postgres_url),
        # One core a batch and a tiny batch target: the 3 trials make 2 batches (budget.max_parallel).
        "MLFLEET_LOCAL_WORKERS": "1",
        "MLFLEET_BATCH_TARGET_SECONDS": "0.001",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    airflow_db = create_database(postgres_url, "celery_airflow")
    host, port = redis_url.split(":")
    broker = f"redis://{host}:{port}/1"  # db 0 is the Feast tests' (they flush it)

    t0 = time.monotonic()
    pids: dict[str, int | None] = {}
    with celery.celery_stack(settings, database_url=airflow_db, broker_url=broker, workers=2, concurrency=1,
                             worker_root=tmp_path / "workers") as stack:
        pids = stack.pids
        print(f"Celery stack up in {time.monotonic() - t0:.1f} s")
        names = {w.name for w in stack.workers}
        assert len(names) == 2
        with ApiClient.login(stack.url, stack.username, stack.password) as api:
            api.wait_for_dag(DAG_ID, timeout=120)
            api.unpause(DAG_ID)
            dag_run_id = api.trigger(DAG_ID, {"spec": SPEC})["dag_run_id"]
            state = api.wait_for_run(DAG_ID, dag_run_id, timeout=240)
            tis = api.task_instances(DAG_ID, dag_run_id)
            print(f"sweep done {time.monotonic() - t0:.1f} s after the start")
            summary = [(ti["task_id"], ti["map_index"], ti["state"], ti["hostname"]) for ti in tis]
            assert state == "success", f"{summary}\n{_worker_logs(stack)}"
            result = api.xcom(DAG_ID, dag_run_id, "end_round")

        # The tasks ran on the Celery workers, each batch on its own worker, so at least one batch
        # ran where `prepare` did not.
        hosts = {(ti["task_id"], ti["map_index"]): ti["hostname"] for ti in tis}
        assert sorted(hosts) == [("end_round", -1), ("prepare", -1), ("run_batch", 0), ("run_batch", 1)], summary
        assert set(hosts.values()) <= names, summary
        batch_hosts = {hosts[("run_batch", 0)], hosts[("run_batch", 1)]}
        assert batch_hosts == names, f"both batches ran on {batch_hosts}: {summary}"

        # The sweep's state is in the object store, and its leaderboard has every trial.
        run_id = run_id_from_airflow(dag_run_id)
        prefix = f"celery/experiments/{NAME}/{run_id}/"
        assert result["results_uri"] == f"s3://{aws_server.bucket}/{prefix.rstrip('/')}"
        keys = _stored_keys(aws_server, prefix)
        assert {"context.json", "data/train.parquet", "rounds/000.json", "leaderboard.json"} <= keys, sorted(keys)
        batches = {k.split("/")[1] for k in keys if k.startswith("batches/") and k.endswith("/model/results.json")}
        assert len(batches) == 2, sorted(keys)
        body = aws_server.client("s3").get_object(Bucket=aws_server.bucket, Key=prefix + "leaderboard.json")["Body"]
        board = json.loads(body.read())
        assert len(board["trials"]) == TRIALS and all(t["status"] == "success" for t in board["trials"]), board
        assert board["best"]["mean_score"] > 0.8

        # No worker (nor the scheduler's side) keeps any of it on its own disk.
        for worker in stack.workers:
            files = sorted(p.relative_to(worker.home) for p in worker.home.rglob("*") if p.is_file())
            unexpected = [f for f in files if not f.name.startswith(LOCAL_BY_DESIGN)]
            assert not unexpected, f"{worker.name} kept {unexpected} in its MLFLEET_HOME"
            assert not SWEEP_FILES & {p.name for p in worker.airflow_home.rglob("*")}, worker.name
        assert not settings.experiments_dir.exists(), "sweep state was written under the stack's MLFLEET_HOME"

    print(f"Celery stack up, sweep and down took {time.monotonic() - t0:.1f} s")
    assert set(pids) == {*COMPONENTS, *names}
    for name, pid in pids.items():
        assert pid is not None and group_gone(pid), f"{name} (pgid {pid}) still running after down"
    assert celery.down(settings) == []  # idempotent
