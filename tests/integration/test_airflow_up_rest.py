"""`mlfleet up` for real: start the local Airflow, drive it as an outside REST client, stop it.

The client triggers the project's own `experiment_sweep` DAG with a spec in the run's conf, the
scheduler runs it with the LocalExecutor (mapped batch tasks included), and the client reads the
result back over the REST API.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlfleet.config import Settings, get_settings
from mlfleet.devstack import stack as airflow_local
from mlfleet.devstack.environment import logs_dir
from mlfleet.devstack.ports import free_port
from services import group_gone
from mlfleet.devstack.processes import component_log
from mlfleet.devstack.rest_client import ApiClient, api_token

pytestmark = pytest.mark.slow

DAG_ID = "experiment_sweep"
SPEC = {
    "name": "iris-rest",
    "task": "classification",
    "target": "target",
    "metric": "accuracy",
    "dataset": {"builtin": "iris"},
    "cv": {"folds": 3, "seed": 0},
    "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}],
}
# Ten rounds of four trials (issue 10's done-when): rounds 1-9 are continuation runs the scheduler
# starts itself, each telling Optuna the last round and asking the next four.
BAYES = {**SPEC, "name": "iris-rounds", "cv": {"folds": 2, "seed": 0},
         "search": {"strategy": "bayes", "n_trials": 40, "batch_size": 4},
         "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.01, 10.0], "log": True}}}]}
MLFLEET = str(Path(sys.executable).parent / "mlfleet")



@pytest.fixture
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "mlfleet"))
    monkeypatch.setenv("MLFLEET_AIRFLOW_PORT", str(free_port()))
    return get_settings()


def test_mlfleet_up_trigger_sweep_over_rest_down(local_settings: Settings) -> None:
    pids: dict[str, int | None] = {}
    try:
        t0 = time.monotonic()
        out = subprocess.run([MLFLEET, "up"], capture_output=True, text=True, env=os.environ, timeout=240)
        assert out.returncode == 0, out.stderr[-2000:]
        url = f"http://127.0.0.1:{local_settings.airflow_port}"
        assert url in out.stdout and "login: admin /" in out.stdout
        print(f"mlfleet up healthy after {time.monotonic() - t0:.1f} s")
        assert all(airflow_local.status(local_settings).values())
        # Task processes fork from the stock LocalExecutor's workers, which the scheduler forked after
        # airflow_local_settings loaded mlfleet's libraries; the execution API's one-time set-up was
        # paid by `up`, not by the first task.
        scheduler_log = component_log(local_settings, "scheduler").read_text()
        assert re.search(r"mlfleet preload: imported \d+ module", scheduler_log), scheduler_log[-3000:]
        assert "could not import" not in scheduler_log
        assert "path=/execution/health " in component_log(local_settings, "api-server").read_text()
        # MLflow's store got its tables from `up` (beside `airflow db migrate`), not from the first sweep.
        with contextlib.closing(sqlite3.connect(local_settings.tracking_uri.removeprefix("sqlite:///"))) as db:
            tables = {name for (name,) in db.execute("select name from sqlite_master where type = 'table'")}
        assert {"experiments", "runs", "registered_models", "alembic_version"} <= tables
        # A second `up` finds everything running and starts nothing.
        again = airflow_local.up(local_settings)
        assert again["started"] == []
        info, pids = again, again["pids"]

        token = api_token(info["url"], info["username"], info["password"])
        with ApiClient(info["url"], token) as api:
            dag = api.wait_for_dag(DAG_ID, timeout=90)
            assert dag["is_paused"] is True  # paused at creation, by design
            api.unpause(DAG_ID)
            run = api.trigger(DAG_ID, {"spec": SPEC})
            run_id = run["dag_run_id"]
            state = api.wait_for_run(DAG_ID, run_id, timeout=240)
            tis = api.task_instances(DAG_ID, run_id)
            assert state == "success", [(ti["task_id"], ti["state"]) for ti in tis]
            states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}
            assert states[("prepare", -1)] == "success"
            assert states[("run_batch", 0)] == "success"
            assert states[("end_round", -1)] == "success"  # the only round: it finalizes
            result = api.xcom(DAG_ID, run_id, "end_round")
            assert result["n_trials"] == 2
            assert result["best"]["model"] == "logistic_l1" and result["best"]["mean_score"] > 0.8
            print(f"up + grid run took {time.monotonic() - t0:.1f} s")

            rounds_run = api.trigger(DAG_ID, {"spec": BAYES})["dag_run_id"]
            t_rounds = time.monotonic()
            runs, state = api.wait_for_sweep(DAG_ID, rounds_run, timeout=900)
            assert state == "success" and len(runs) == 10, runs
            print(f"10 bayes rounds through the scheduler took {time.monotonic() - t_rounds:.1f} s")
            sweep = api.xcom(DAG_ID, rounds_run, "prepare", key="sweep")
            assert [r.rsplit("__", 1)[0] for r in runs[1:]] == [f"iris-rounds__{sweep['run_id']}__round_{k:04d}"
                                                                for k in range(1, 10)]
            assert [api.xcom(DAG_ID, r, "prepare", key="round") for r in runs] == list(range(10))
            board = api.xcom(DAG_ID, runs[-1], "end_round")
            assert board["n_trials"] == 40
        from mlfleet import tuning
        from mlfleet.results import read_leaderboard

        results = Path(board["results_uri"].removeprefix("file://"))
        assert len({row["trial_id"] for row in read_leaderboard(results)["trials"]}) == 40
        rounds = [json.loads((results / "rounds" / f"{k:03d}.json").read_text()) for k in range(10)]
        numbers = [sorted(t["optuna_number"] for b in r for t in b["trials"]) for r in rounds]
        assert numbers == [list(range(4 * k, 4 * k + 4)) for k in range(10)]  # each round asked after the last was told
        study = tuning.load_study(storage=local_settings.optuna_storage, name=f"iris-rounds.{sweep['run_id']}")
        assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 40
        # Every trial is a finished MLflow run.
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=local_settings.tracking_uri)
        experiment = client.get_experiment_by_name("iris-rounds")
        trial_runs = client.search_runs([experiment.experiment_id], max_results=100, filter_string=(
            f"tags.`mlfleet.sweep_run_id` = '{sweep['run_id']}' and tags.`mlfleet.role` = 'trial'"))
        assert len(trial_runs) == 40 and {r.info.status for r in trial_runs} == {"FINISHED"}
        print(f"up + both sweeps took {time.monotonic() - t0:.1f} s")
    finally:
        stopped = airflow_local.down(local_settings)
    assert set(stopped) == set(airflow_local.COMPONENTS)
    assert not any(airflow_local.status(local_settings).values())
    for component, pid in pids.items():
        assert pid is not None and group_gone(pid), f"{component} (pgid {pid}) still running"
    assert airflow_local.down(local_settings) == []  # idempotent


def test_up_refuses_a_port_taken_by_another_program(local_settings: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", local_settings.airflow_port))
        squatter.listen()
        with pytest.raises(RuntimeError, match=rf"{local_settings.airflow_port}.*MLFLEET_AIRFLOW_PORT"):
            airflow_local.up(local_settings, wait_seconds=5)
    assert not any(airflow_local.status(local_settings).values())
