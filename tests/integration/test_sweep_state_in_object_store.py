"""Sweep state in the object store: workers that share no disk still run one sweep.

A bayes sweep of two rounds runs through the real scheduler (`mlfleet up`, triggered over REST)
with MLFLEET_SWEEP_STATE=object_store on the moto server, Optuna and MLflow on PostgreSQL and
MLflow's artifacts in the same bucket. Every task process gets its own new, empty MLFLEET_HOME
before it runs (an Airflow listener plugin, installed for this test through a Python entry point),
as tasks on separate machines would: the sweep can only succeed if everything one task hands the
next goes through the object store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from services import airflow_stack, create_database

pytestmark = pytest.mark.slow
NAME = "state-in-store"
SPEC = {"name": NAME, "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "cv": {"folds": 2, "seed": 3},
        "search": {"strategy": "bayes", "n_trials": 4, "batch_size": 2},
        "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.01, 10.0], "log": True}}}]}

# An Airflow plugin whose listener gives each task process a fresh MLFLEET_HOME before it runs,
# and notes which task got which folder.
LISTENER = '''
import json, os, tempfile
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin


class FreshHome:
    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        homes = os.environ["FRESH_HOMES_DIR"]
        home = tempfile.mkdtemp(prefix="task-", dir=homes)
        os.environ["MLFLEET_HOME"] = home
        with open(os.path.join(homes, "tasks.jsonl"), "a") as log:
            log.write(json.dumps({"run_id": task_instance.run_id, "task_id": task_instance.task_id,
                                  "map_index": task_instance.map_index, "pid": os.getpid(), "home": home}) + "\\n")


class FreshHomePlugin(AirflowPlugin):
    name = "fresh_home"
    listeners = [FreshHome()]
'''


def install_listener(directory: Path) -> Path:
    """The plugin as an importable module with an `airflow.plugins` entry point (a dist-info)."""
    directory.mkdir()
    (directory / "fresh_home_plugin.py").write_text(LISTENER)
    info = directory / "fresh_home_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fresh-home-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[airflow.plugins]\nfresh_home = fresh_home_plugin:FreshHomePlugin\n")
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, aws_server: Any, postgres_url: str) -> Any:
    work = tmp_path_factory.mktemp("state-in-store")
    homes = work / "task-homes"
    homes.mkdir()
    plugin_path = install_listener(work / "plugin")
    env = {
        "MLFLEET_LOCAL_WORKERS": "1",
        "MLFLEET_SWEEP_STATE": "object_store",
        "MLFLEET_OBJECT_STORE_URI": f"s3://{aws_server.bucket}/state",
        "MLFLEET_OPTUNA_STORAGE_URL": postgres_url,
        # A database of its own: MLflow and Optuna both keep an `alembic_version` table.
        "MLFLEET_MLFLOW_TRACKING_URI": create_database(postgres_url, "mlflow_state"),
        "AIRFLOW_CONN_AWS_DEFAULT": aws_server.connection_uri,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws_server.region,
        "MLFLOW_S3_ENDPOINT_URL": aws_server.endpoint,  # MLflow's own S3 client (artifacts)
        "MLFLEET_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/mlfleet-sagemaker",
        "MLFLEET_TRIAL_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfleet-trial:test",
        "MLFLEET_SAGEMAKER_CHECK_INTERVAL": "1", "MLFLEET_SAGEMAKER_PRINT_LOG": "false",
        "FRESH_HOMES_DIR": str(homes),
        "PYTHONPATH": os.pathsep.join([str(plugin_path), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    with airflow_stack(work / "mlfleet", ["experiment_sweep"], env) as (settings, api):
        yield settings, api, homes, aws_server


def stored_keys(aws: Any, prefix: str) -> set[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def test_a_sweep_whose_tasks_share_no_disk_keeps_its_state_in_the_object_store(stack: Any) -> None:
    from mlflow import MlflowClient

    from mlfleet.sweep import run_id_from_airflow
    from mlfleet.tuning import load_study

    settings, api, homes, aws = stack
    dag_run_id = api.trigger("experiment_sweep", {"spec": SPEC})["dag_run_id"]
    run_id = run_id_from_airflow(dag_run_id)
    runs, state = api.wait_for_sweep("experiment_sweep", dag_run_id, timeout=600)
    assert len(runs) == 2 and runs[1].startswith(f"{NAME}__{run_id}__round_0001__"), runs
    assert state == "success", f"round {len(runs) - 1} ended {state}"
    last_round = runs[1]

    tasks = [json.loads(line) for line in (homes / "tasks.jsonl").read_text().splitlines()]
    ran = sorted((t["run_id"], t["task_id"]) for t in tasks)
    assert ran == sorted([(dag_run_id, "prepare"), (dag_run_id, "run_batch"), (dag_run_id, "end_round"),
                          (last_round, "prepare"), (last_round, "run_batch"), (last_round, "end_round")])
    assert len({t["home"] for t in tasks}) == len({t["pid"] for t in tasks}) == len(tasks), "two tasks shared a home"
    left_on_disk = sorted(p.name for t in tasks for p in Path(t["home"]).rglob("*") if p.is_file())
    assert not {"context.json", "leaderboard.json", "results.json", "train.parquet", "000.json"} & set(left_on_disk)
    assert not settings.experiments_dir.exists(), "sweep state was written under the stack's own MLFLEET_HOME"

    prefix = f"state/experiments/{NAME}/{run_id}/"
    keys = stored_keys(aws, prefix)
    batches = {k.split("/")[1] for k in keys if k.startswith("batches/")}
    assert {"context.json", "spec.json", "airflow_run.json", "data/train.parquet", "rounds/000.json", "rounds/001.json",
            "leaderboard.json", "leaderboard.csv", "parallel_coordinates.html", "model/registered.json"} <= keys
    assert len(batches) == 2 and all(f"batches/{b}/model/results.json" in keys for b in batches)

    body = aws.client("s3").get_object(Bucket=aws.bucket, Key=prefix + "leaderboard.json")["Body"].read()
    board = json.loads(body)
    assert board["results_uri"] == f"s3://{aws.bucket}/{prefix.rstrip('/')}"
    assert len(board["trials"]) == 4 and all(t["status"] == "success" for t in board["trials"])
    study = load_study(storage=settings.optuna_storage_url, name=f"{NAME}.{run_id}")
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 4

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    version = client.get_model_version(NAME, board["registered_model"]["version"])
    assert version.tags["mlfleet.sweep_run_id"] == run_id
    artifacts = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix="state/mlartifacts/").get("Contents", [])
    assert any(item["Key"].endswith("MLmodel") for item in artifacts), "the registered model's files are not in the store"

    # The results UI in Airflow's api-server reads the same state from the object store.
    listing = api.page("/mlfleet/experiments")
    assert listing.status_code == 200 and f"/experiments/{NAME}/{run_id}" in listing.text
    page = api.page(f"/mlfleet/experiments/{NAME}/{run_id}")
    assert page.status_code == 200 and board["best"]["trial_id"] in page.text
    assert api.page(f"/mlfleet/experiments/{NAME}/{run_id}/leaderboard.json").json() == board
    tab = api.page(f"/mlfleet/runs/experiment_sweep/{last_round}", follow_redirects=False)
    assert tab.headers["location"].endswith(f"/experiments/{NAME}/{run_id}")



def test_sagemaker_batches_write_their_rows_into_the_object_store_state(stack: Any) -> None:
    """A deferred SageMaker batch resumes in a new task process with a new empty home, and still
    brings its job's rows into the sweep's state in the object store."""
    from mlfleet.sweep import run_id_from_airflow

    settings, api, homes, aws = stack
    spec = {"name": "state-sagemaker", "task": "classification", "target": "target", "metric": "accuracy",
            "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0}, "backend": "sagemaker",
            "models": [{"type": "logistic_l1", "params": {"C": [0.5, 2.0]}}],
            "resources": {"cpu": 2, "memory_gb": 4}, "budget": {"max_parallel": 1, "timeout_minutes": 10}}
    dag_run_id = api.trigger("experiment_sweep", {"spec": spec})["dag_run_id"]
    assert api.wait_for_run("experiment_sweep", dag_run_id, timeout=300) == "success"
    prefix = f"state/experiments/state-sagemaker/{run_id_from_airflow(dag_run_id)}/"
    results = [k for k in stored_keys(aws, prefix) if k.endswith("/model/results.json")]
    assert len(results) == 1
    body = aws.client("s3").get_object(Bucket=aws.bucket, Key=prefix + results[0])["Body"].read()
    rows = json.loads(body)
    assert len(rows) == 2 and all(r["status"] == "success" and r["job_name"] for r in rows)
    assert "leaderboard.json" in stored_keys(aws, prefix)


def test_mlfleet_sweep_in_one_process_uses_the_same_object_store_state(stack: Any) -> None:
    """`mlfleet sweep` (run_sweep) with the same settings: its results go to the store too."""
    from mlfleet.config import get_settings
    from mlfleet.sweep import run_sweep

    _, _, _, aws = stack
    spec = {"name": "state-cli", "task": "classification", "target": "target", "metric": "accuracy",
            "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
            "models": [{"type": "logistic_l1", "params": {"C": [0.5, 2.0]}}]}
    board = run_sweep(spec, settings=get_settings())
    prefix = f"state/experiments/state-cli/{board['run_id']}/"
    assert board["results_uri"] == f"s3://{aws.bucket}/{prefix.rstrip('/')}"
    stored = json.loads(aws.client("s3").get_object(Bucket=aws.bucket, Key=prefix + "leaderboard.json")["Body"].read())
    assert stored == board and len(stored["trials"]) == 2
    assert not (get_settings().experiments_dir / "state-cli").exists()


def test_drift_reports_and_decisions_in_the_object_store_show_in_the_results_ui(stack: Any) -> None:
    """drift_monitor's reports and retrain's decisions live beside the sweeps; the pages read them there."""
    import numpy as np
    import pandas as pd

    from mlfleet.backends.object_store import state_root
    from mlfleet.drift.statistics import drift_report, write_drift_report
    from mlfleet.storage import write_json_atomic
    from mlfleet.sweep import run_id_from_airflow

    settings, api, _, aws = stack
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"spend": rng.normal(0, 1, 300)})
    current = pd.DataFrame({"spend": rng.normal(1.5, 1, 300)})
    report = drift_report(reference=reference, current=current, features=["spend"], psi_threshold=0.2,
                          ks_pvalue=0.01, ks_statistic=0.1)
    report.update(model=NAME, champion_version="1", window_days=7, checked_at="2026-12-01T00:00:00+00:00")
    write_drift_report(report, state_root(settings, "drift") / NAME / "20261201T000000-k3y.json")
    decision = {"model": NAME, "challenger_version": "9", "champion_version": "1", "promoted": False,
                "challenger_score": 0.5, "champion_score": 0.9, "holdout_rows": 30}
    retrain_run = run_id_from_airflow(f"retrain__{NAME}__v1__k3y")  # the retrain this report triggered
    write_json_atomic(state_root(settings, "decisions") / NAME / f"{retrain_run}.json", decision)
    assert stored_keys(aws, "state/drift/") == {f"{NAME}/20261201T000000-k3y.json"}
    assert stored_keys(aws, "state/decisions/") == {f"{NAME}/{retrain_run}.json"}

    listing = api.page("/mlfleet/drift")
    assert listing.status_code == 200 and listing.text.count('class="drift-row"') == 1
    page = api.page(f"/mlfleet/drift/{NAME}/20261201T000000-k3y")
    assert page.status_code == 200 and f"retrain__{NAME}__v1__k3y" in page.text
    assert "decision: <strong>kept the champion</strong>" in page.text, "the decision was not read from the store"
    assert not (settings.home_dir / "drift").exists() and not (settings.home_dir / "decisions").exists()
