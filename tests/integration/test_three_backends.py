"""One spec, three backends, the same leaderboard trial for trial.

local: the experiment_sweep DAG under `dag.test()`, trials in local processes.
sagemaker: the same DAG; run_batch hands each batch to BatchTrainingJobOperator (deferrable), which sends every request to a moto
server whose runtime stand-in runs the job from exactly that request; results come back from
the job's model.tar.gz.
kubernetes: no API server can run here, so the sweep's steps are called in order and each pod is
the one KubernetesPodOperator builds from the arguments run_batch would hand it (validated with
kubernetes-validate), run by the kubelet stand-in from its own command, args and env; data and
results travel through the same moto S3, the result through the XCom sidecar file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_runtime import run_pod

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "iris-three",
    "task": "classification",
    "target": "target",
    "metric": "accuracy",
    "dataset": {"builtin": "iris"},
    "cv": {"folds": 3, "seed": 0},
    "models": [
        {"type": "logistic_l1", "params": {"C": [0.05, 1.0]}},
        {"type": "random_forest", "params": {"n_estimators": [10, 20], "max_depth": [3]},
         "resources": {"cpu": 1, "memory_gb": 2}},
    ],
    "resources": {"cpu": 2, "memory_gb": 4},
    "budget": {"max_parallel": 2, "timeout_minutes": 10},
}
COMPARED = ("trial_id", "model", "params", "fold_scores", "mean_score", "std_score", "status")


def dag_sweep(spec: dict) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    from mlfleet.results import read_leaderboard

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["experiment_sweep"]
    run = dag.test(run_conf={"spec": spec})
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    end = next(ti for ti in run.get_task_instances() if ti.task_id == "end_round")
    uri = end.xcom_pull(task_ids="end_round")["results_uri"]
    return {"board": read_leaderboard(Path(uri.removeprefix("file://"))), "states": states}


def kubernetes_sweep(spec: dict, aws, tmp_path: Path) -> dict:
    """The sweep's steps in order, each batch's pod built by KPO from the arguments run_batch would
    hand it, validated, and run by the kubelet stand-in."""
    import kubernetes_validate

    from mlfleet import sweep
    from mlfleet.backends.kubernetes import manifest_problems, pod_manifest
    from mlfleet.backends.kubernetes_operator import store_pod_result
    from mlfleet.config import get_settings
    from mlfleet.sweep import dispatch

    settings = get_settings()
    context = sweep.prepare(spec, settings=settings, run_id=sweep.run_id_from_airflow("manual__2026-11-23T10:00:00+00:00"))
    cluster_env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": aws.region, "AWS_ENDPOINT_URL": aws.endpoint}
    manifests = []
    assert context.rounds == 1
    for batch in sweep.propose(context, round_index=0, settings=settings):
        arguments = dispatch.kubernetes_pod(context, batch, settings=settings)
        manifest = pod_manifest({k: v for k, v in arguments.items() if k not in ("results_dir", "batch_id")})
        kubernetes_validate.validate(manifest, "1.30", strict=True)
        assert manifest_problems(manifest) == []
        xcom = run_pod(manifest, work=tmp_path / manifest["metadata"]["name"], cluster_env=cluster_env)
        store_pod_result(xcom, results_dir=arguments["results_dir"], batch_id=arguments["batch_id"],
                         pod_name=manifest["metadata"]["name"])
        manifests.append(manifest)
    board = sweep.finalize(context, settings=settings)
    return {"board": board, "manifests": manifests}


def comparable(board: dict) -> list[dict]:
    return [{key: row[key] for key in COMPARED} for row in board["trials"]]


@pytest.mark.slow
def test_same_leaderboard_on_local_sagemaker_and_kubernetes(airflow_db, aws, settings, tmp_path, monkeypatch) -> None:
    local = dag_sweep({**SPEC, "backend": "local"})
    assert local["states"][("run_batch", 0)] == "success"
    assert sorted(task for task, _ in local["states"]) == ["end_round", "prepare", "run_batch", "run_batch"]

    sagemaker = dag_sweep({**SPEC, "backend": "sagemaker"})
    sent = aws.created_training_jobs()
    ran = {k: v for k, v in sagemaker["states"].items() if k[0] == "run_batch"}
    assert len(ran) == 2 and set(ran.values()) == {"success"}  # two resource shapes: two jobs
    assert sorted(r["ResourceConfig"]["InstanceType"] for r in sent[-2:]) == ["ml.m5.large", "ml.m5.large"]
    assert all(row["billable_seconds"] >= 1 and row["job_name"] for row in sagemaker["board"]["trials"])

    kubernetes = kubernetes_sweep({**SPEC, "backend": "kubernetes"}, aws, tmp_path)
    assert len(kubernetes["manifests"]) == 2
    assert {m["spec"]["containers"][0]["resources"]["requests"]["cpu"] for m in kubernetes["manifests"]} == {"1", "2"}

    assert len(local["board"]["trials"]) == 4
    assert comparable(sagemaker["board"]) == comparable(local["board"])
    assert comparable(kubernetes["board"]) == comparable(local["board"])
    assert local["board"]["best"]["trial_id"] == sagemaker["board"]["best"]["trial_id"] == kubernetes["board"]["best"]["trial_id"]


@pytest.fixture
def settings(mlfleet_home, aws):  # noqa: F811 - the remote backends' settings must be set before reading
    from mlfleet.config import get_settings

    return get_settings()
