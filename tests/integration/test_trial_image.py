"""The trial image's dependency set (requirements-trial.txt) runs the training entrypoint with no
Airflow, Spark or Feast installed: the same code SageMaker jobs and pods run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfleet.training.entrypoint import stage_job

ROOT = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).parent / "uv")

pytestmark = pytest.mark.slow


def test_entrypoint_runs_in_the_trial_environment(tmp_path: Path, aws) -> None:
    venv = tmp_path / "trial-venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([UV, "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    install = [UV, "pip", "install", "-q", "-p", python]
    subprocess.run([*install, "-r", str(ROOT / "requirements-trial.txt"), "-c", str(ROOT / "constraints.txt")], check=True, env=env)
    subprocess.run([*install, "--no-deps", str(ROOT)], check=True, env=env)

    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    root = tmp_path / "opt-ml"
    (root / "input/data/train").mkdir(parents=True)
    frame.to_parquet(root / "input/data/train/train.parquet")
    job = {"task": "classification", "target": "target", "metric": "roc_auc", "cv": {"folds": 3, "seed": 0},
           "features": [c for c in frame.columns if c != "target"],
           "trials": [{"trial_id": "logistic-l1-test", "model": "logistic_l1", "params": {"C": 1.0}, "model_index": 0,
                       "optuna_number": None}]}
    stage_job(root, job)

    probe = (
        "import sys\n"
        "import mlfleet.training.entrypoint as e; code = e.main(['train', '--root', sys.argv[1]])\n"
        "print('heavy:', sorted(m for m in ('airflow', 'pyspark', 'feast', 'mlflow') if m in sys.modules)); sys.exit(code)"
    )
    out = subprocess.run([python, "-c", probe, str(root)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy: []" in out.stdout
    assert "trial=logistic-l1-test mean_score=" in out.stdout
    for missing in ("airflow", "pyspark", "feast"):
        check = subprocess.run([python, "-c", f"import {missing}"], capture_output=True, env=env)
        assert check.returncode != 0, f"{missing} is installed in the trial environment"
    rows = json.loads((root / "model/results.json").read_text())
    assert rows[0]["status"] == "success" and len(rows[0]["fold_scores"]) == 3

    # The pod path in the same environment: channels from S3, checkpoints and results back, XCom file.
    s3 = aws.client("s3")
    prefix = f"s3://{aws.bucket}/trial-image-test"
    s3.upload_file(str(root / "input/data/train/train.parquet"), aws.bucket, "trial-image-test/data/train.parquet")
    s3.put_object(Bucket=aws.bucket, Key="trial-image-test/batch/config/job.json",
                  Body=(root / "input/data/config/job.json").read_bytes())
    pod_env = {**env, "AWS_ENDPOINT_URL": aws.endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": aws.region,
               "MLFLEET_SM_ROOT": str(tmp_path / "pod-opt-ml"), "MLFLEET_XCOM_FILE": str(tmp_path / "xcom/return.json")}
    hyperparameters = json.loads((root / "input/config/hyperparameters.json").read_text())
    pod = subprocess.run([python, "-m", "mlfleet.training.entrypoint", "train", "--hyperparameters", json.dumps(hyperparameters),
                          "--channel", f"train={prefix}/data/", "--channel", f"config={prefix}/batch/config/",
                          "--output", f"{prefix}/batch/", "--xcom"], capture_output=True, text=True, env=pod_env)
    assert pod.returncode == 0, pod.stderr[-2000:]
    xcom = json.loads((tmp_path / "xcom/return.json").read_text())
    assert xcom["results_uri"] == f"{prefix}/batch/results.json"
    stored = json.loads(s3.get_object(Bucket=aws.bucket, Key="trial-image-test/batch/results.json")["Body"].read())
    assert stored == xcom["results"] and stored[0]["fold_scores"] == rows[0]["fold_scores"]
    assert s3.head_object(Bucket=aws.bucket, Key="trial-image-test/batch/checkpoints/logistic-l1-test.json")
