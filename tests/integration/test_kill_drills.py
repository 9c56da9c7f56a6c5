"""Kill drills through the real scheduler: `mlfleet up`, a sweep triggered over REST, a real process
killed with SIGKILL while its batch runs, a killed component brought back with `mlfleet up`. The
run must still end `success`, with a leaderboard identical trial for trial to an undisturbed run.
Each trial must appear once in the leaderboard, once as an MLflow run and once in the Optuna study
(docs/fault-drills.md lists the drills).

The undisturbed run is the same spec through `run_sweep` in this process. Training is seeded, so
its scores are the ones every run must reproduce. The SageMaker drill runs against the moto server
and its runtime stand-in (aws_runtime.py), which also counts every CreateTrainingJob it receives.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlfleet.config import Settings
from mlfleet.devstack import processes
from services import airflow_stack, mlfleet_up

pytestmark = pytest.mark.slow
DAG_ID = "experiment_sweep"
# 10 trials x 3 folds of a forest on breast_cancer, one fit at a time: a batch of ~15-25 s.
SPEC = {"name": "drill", "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "cv": {"folds": 3, "seed": 0},
        "models": [{"type": "random_forest", "params": {"n_estimators": [40, 60, 80, 100, 120],
                                                        "max_depth": [3, 6]}}]}
# Two batches (two resource shapes) of two trials each on the SageMaker stand-in.
SAGEMAKER_SPEC = {"name": "drill-sagemaker", "task": "classification", "target": "target", "metric": "accuracy",
                  "dataset": {"builtin": "iris"}, "cv": {"folds": 3, "seed": 0}, "backend": "sagemaker",
                  "models": [{"type": "logistic_l1", "params": {"C": [0.05, 1.0]}},
                             {"type": "random_forest", "params": {"n_estimators": [10, 20], "max_depth": [3]},
                              "resources": {"cpu": 1, "memory_gb": 2}}],
                  "resources": {"cpu": 2, "memory_gb": 4}, "budget": {"max_parallel": 2, "timeout_minutes": 10}}
ENTRYPOINT = "mlfleet.training.entrypoint"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, aws_server: Any) -> Any:
    """`mlfleet up` on a fresh MLFLEET_HOME, its components pointed at the moto server for SageMaker batches."""
    env = {"MLFLEET_LOCAL_WORKERS": "1", "AIRFLOW_CONN_AWS_DEFAULT": aws_server.connection_uri,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": aws_server.region,
           "MLFLEET_OBJECT_STORE_URI": f"s3://{aws_server.bucket}/drills",
           "MLFLEET_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/mlfleet-sagemaker",
           "MLFLEET_TRIAL_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfleet-trial:test",
           "MLFLEET_SAGEMAKER_CHECK_INTERVAL": "1", "MLFLEET_SAGEMAKER_PRINT_LOG": "false"}
    with airflow_stack(tmp_path_factory.mktemp("drills") / "mlfleet", [DAG_ID], env) as stack:
        yield stack


def reference(settings: Settings, spec: dict[str, Any]) -> dict[str, float]:
    """The undisturbed run: the same seeded spec through `run_sweep`, on local processes."""
    from mlfleet.sweep import run_sweep

    board = run_sweep({**spec, "name": f"{spec['name']}-reference", "backend": "local"}, settings=settings)
    return {t["trial_id"]: t["mean_score"] for t in board["trials"]}


@pytest.fixture(scope="module")
def undisturbed(stack: Any) -> dict[str, float]:
    return reference(stack[0], SPEC)


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


def _gone_within(proc: psutil.Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, f"training process {proc.pid} outlived its killed task process"
        time.sleep(0.1)


def _kill_component(settings: Settings, component: str) -> int:
    """SIGKILL an Airflow component's whole process group (for the scheduler: its executor's
    workers and the task supervisors too), as a crashed or OOM-killed container would lose them."""
    pid = processes.read_pid(settings, component)
    assert pid is not None and processes.pid_alive(pid), f"{component} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while processes.status(settings)[component]:
        assert time.monotonic() < deadline, f"{component} survived SIGKILL"
        time.sleep(0.2)
    return pid


def _counted_once(settings: Settings, experiment: str, sweep_run: str, undisturbed: dict[str, float]) -> None:
    """Leaderboard identical to the undisturbed run, each trial once there, in MLflow and in Optuna."""
    from mlflow import MlflowClient

    from mlfleet.results.leaderboard import read_leaderboard
    from mlfleet.tuning import load_study

    board = read_leaderboard(settings.experiments_dir / experiment / sweep_run)
    assert {t["trial_id"]: t["mean_score"] for t in board["trials"]} == undisturbed
    assert len({t["trial_id"] for t in board["trials"]}) == len(board["trials"]) == len(undisturbed)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000,
                              filter_string=f"tags.`mlfleet.sweep_run_id` = '{sweep_run}' and tags.`mlfleet.role` = 'trial'")
    assert sorted(r.data.tags["mlfleet.trial_id"] for r in runs) == sorted(undisturbed)
    study = load_study(storage=settings.optuna_storage, name=f"{experiment}.{sweep_run}")
    assert sorted(t.value for t in study.trials) == sorted(undisturbed.values())


def _drill(stack: Any, undisturbed: dict[str, float], kill: str) -> dict[str, Any]:
    """Trigger, kill `kill` while the batch trains ("training" subprocess, the "task" process running
    run_batch, or the "scheduler"), bring the stack back with `mlfleet up`, wait, count."""
    from mlfleet.sweep import run_id_from_airflow

    settings, api = stack
    run_id = api.trigger(DAG_ID, {"spec": SPEC})["dag_run_id"]
    sweep_run = run_id_from_airflow(run_id)
    training = _training_process(f"/drill/{sweep_run}/")
    killed_at = time.monotonic()
    if kill == "scheduler":
        victim = _kill_component(settings, "scheduler")
        assert "scheduler" in mlfleet_up()
    else:
        victim = (training if kill == "training" else training.parent()).pid
        os.kill(victim, signal.SIGKILL)
        if kill == "task":  # the training process dies with it (parent-death signal), not at the retry
            _gone_within(training, 10)
    state = api.wait_for_run(DAG_ID, run_id, timeout=600)
    recovered = time.monotonic() - killed_at
    tries = {(ti["task_id"], ti["map_index"]): ti["try_number"] for ti in api.task_instances(DAG_ID, run_id)}
    assert state == "success", tries
    assert tries[("run_batch", 0)] == 2  # the killed try failed (or was reset), its retry finished the batch

    _counted_once(settings, "drill", sweep_run, undisturbed)
    batch_root = str(settings.experiments_dir / "drill" / sweep_run / "batches")
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if ENTRYPOINT in (p.info["cmdline"] or []) and any(batch_root in c for c in p.info["cmdline"])]
    assert left == [], "a training process outlived its batch"
    print(f"killed the {kill} ({victim}); the run succeeded {recovered:.1f} s later")
    return {"recovered_s": recovered}


def test_the_training_subprocess_killed_mid_batch(stack: Any, undisturbed: dict[str, float]) -> None:
    _drill(stack, undisturbed, "training")


def test_the_task_process_running_the_batch_killed_mid_batch(stack: Any, undisturbed: dict[str, float]) -> None:
    _drill(stack, undisturbed, "task")


def test_the_scheduler_killed_mid_batch(stack: Any, undisturbed: dict[str, float]) -> None:
    _drill(stack, undisturbed, "scheduler")


def test_the_triggerer_killed_while_sagemaker_batches_are_deferred(stack: Any, aws_server: Any) -> None:
    """The triggerer dies while both SageMaker batches wait on their jobs; the restarted one resumes
    the same triggers: no second training job, and the run ends as an undisturbed one would."""
    from mlfleet.sweep import run_id_from_airflow

    settings, api = stack
    expected = reference(settings, SAGEMAKER_SPEC)
    sent_before = len(aws_server.created_training_jobs())
    with aws_server.hold():  # the jobs stay InProgress: the batches stay deferred
        run_id = api.trigger(DAG_ID, {"spec": SAGEMAKER_SPEC})["dag_run_id"]
        deadline = time.monotonic() + 300
        while True:
            batches = [ti for ti in api.task_instances(DAG_ID, run_id) if ti["task_id"] == "run_batch"]
            if len(batches) == 2 and all(ti["state"] == "deferred" for ti in batches):
                break
            assert time.monotonic() < deadline, batches
            time.sleep(1)
        killed_at = time.monotonic()
        victim = _kill_component(settings, "triggerer")
        assert "triggerer" in mlfleet_up()
    state = api.wait_for_run(DAG_ID, run_id, timeout=600)
    recovered = time.monotonic() - killed_at
    tries = {(ti["task_id"], ti["map_index"]): ti["try_number"] for ti in api.task_instances(DAG_ID, run_id)}
    assert state == "success", tries
    assert [tries[("run_batch", i)] for i in (0, 1)] == [1, 1]  # resumed, not retried
    sweep_run = run_id_from_airflow(run_id)
    jobs = [r["TrainingJobName"] for r in aws_server.created_training_jobs()[sent_before:]]
    assert len(jobs) == len(set(jobs)) == 2, jobs  # one job per batch, none sent twice
    _counted_once(settings, SAGEMAKER_SPEC["name"], sweep_run, expected)
    print(f"killed the triggerer ({victim}); the run succeeded {recovered:.1f} s later")
