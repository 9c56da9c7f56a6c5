"""Kill drills through the real scheduler: `mlfleet up`, a sweep triggered over REST, a real process
killed with SIGKILL while its batch runs. The run must still end `success`, with a leaderboard
identical trial for trial to an undisturbed run. Each trial must appear once in the leaderboard,
once as an MLflow run and once in the Optuna study (docs/fault-drills.md lists the drills).

The undisturbed run is the same spec through `run_sweep` in this process. Training is seeded, so
its scores are the ones every run must reproduce.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlfleet.config import Settings, get_settings
from mlfleet.devstack import stack as airflow_local
from mlfleet.devstack.ports import free_port
from mlfleet.devstack.rest_client import ApiClient, api_token

pytestmark = pytest.mark.slow
DAG_ID = "experiment_sweep"
MLFLEET = str(Path(sys.executable).parent / "mlfleet")
# 10 trials x 3 folds of a forest on breast_cancer, one fit at a time: a batch of ~15-25 s.
SPEC = {"name": "drill", "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "cv": {"folds": 3, "seed": 0},
        "models": [{"type": "random_forest", "params": {"n_estimators": [40, 60, 80, 100, 120],
                                                        "max_depth": [3, 6]}}]}
ENTRYPOINT = "mlfleet.training.entrypoint"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLEET_HOME", str(tmp_path_factory.mktemp("drills") / "mlfleet"))
        env.setenv("MLFLEET_AIRFLOW_PORT", str(free_port()))
        env.setenv("MLFLEET_LOCAL_WORKERS", "1")
        settings = get_settings()
        out = subprocess.run([MLFLEET, "up"], capture_output=True, text=True, env=os.environ, timeout=240)
        assert out.returncode == 0, out.stderr[-2000:]
        info = airflow_local.up(settings)
        api = ApiClient(info["url"], api_token(info["url"], info["username"], info["password"]), timeout=60)
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)
        try:
            yield settings, api
        finally:
            api.close()
            airflow_local.down(settings)


@pytest.fixture(scope="module")
def undisturbed(stack: Any) -> dict[str, float]:
    from mlfleet.sweep import run_sweep

    settings, _ = stack
    board = run_sweep({**SPEC, "name": "drill-reference"}, settings=settings)
    return {t["trial_id"]: t["mean_score"] for t in board["trials"]}


def _training_process(results_dir_part: str, timeout: float = 180) -> psutil.Process:
    """The batch's training subprocess, once it has checkpointed at least two trials."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if ENTRYPOINT in cmd and any(results_dir_part in part for part in cmd):
                root = Path(cmd[cmd.index("--root") + 1])
                if len(list((root / "checkpoints").glob("*.json"))) >= 2:
                    return proc
        time.sleep(0.2)
    raise TimeoutError("no training subprocess with two checkpoints appeared")


def _drill(stack: Any, undisturbed: dict[str, float], kill: str) -> dict[str, Any]:
    """Trigger, kill `kill` ("training" subprocess or the "task" process running run_batch), wait."""
    from mlflow import MlflowClient

    from mlfleet.results.leaderboard import read_leaderboard
    from mlfleet.tuning import load_study

    settings, api = stack
    run_id = api.trigger(DAG_ID, {"spec": SPEC})["dag_run_id"]
    from mlfleet.sweep import run_id_from_airflow

    sweep_run = run_id_from_airflow(run_id)
    training = _training_process(f"/drill/{sweep_run}/")
    victim = training if kill == "training" else training.parent()
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    state = api.wait_for_run(DAG_ID, run_id, timeout=600)
    recovered = time.monotonic() - killed_at
    tries = {(ti["task_id"], ti["map_index"]): ti["try_number"] for ti in api.task_instances(DAG_ID, run_id)}
    assert state == "success", tries
    assert tries[("run_batch", 0)] == 2  # the killed try failed, its retry finished the batch

    results = settings.experiments_dir / "drill" / sweep_run
    board = read_leaderboard(results)
    assert {t["trial_id"]: t["mean_score"] for t in board["trials"]} == undisturbed
    assert len({t["trial_id"] for t in board["trials"]}) == len(board["trials"]) == len(undisturbed)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name("drill")
    runs = client.search_runs([experiment.experiment_id], max_results=1000,
                              filter_string=f"tags.`mlfleet.sweep_run_id` = '{sweep_run}' and tags.`mlfleet.role` = 'trial'")
    assert sorted(r.data.tags["mlfleet.trial_id"] for r in runs) == sorted(undisturbed)
    study = load_study(storage=settings.optuna_storage, name=f"drill.{sweep_run}")
    assert sorted(t.value for t in study.trials) == sorted(undisturbed.values())
    batch_root = str(results / "batches")
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if ENTRYPOINT in (p.info["cmdline"] or []) and any(batch_root in c for c in p.info["cmdline"])]
    assert left == [], "a training process outlived its batch (the retry must stop an orphan)"
    print(f"killed the {kill} process ({victim.pid}); the run succeeded {recovered:.1f} s later")
    return {"recovered_s": recovered}


def test_the_training_subprocess_killed_mid_batch(stack: Any, undisturbed: dict[str, float]) -> None:
    _drill(stack, undisturbed, "training")


def test_the_task_process_running_the_batch_killed_mid_batch(stack: Any, undisturbed: dict[str, float]) -> None:
    _drill(stack, undisturbed, "task")
