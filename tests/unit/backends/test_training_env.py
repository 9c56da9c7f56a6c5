"""A local training process starts without the deployment's secrets: its task's environment, less
Airflow's configuration, connections and variables, AWS keys and the stores' credentials.

That the local backend hands a trainer this environment is tested with a real trainer in
test_local_backend.py."""

from __future__ import annotations

from mlfleet.backends.training_env import training_env

SECRETS = {
    "AIRFLOW__CORE__FERNET_KEY": "fernet", "AIRFLOW__API_AUTH__JWT_SECRET": "jwt", "AIRFLOW__API__SECRET_KEY": "api",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:pw@db/airflow",
    "AIRFLOW__CORE__FERNET_KEY_CMD": "cat /run/fernet", "AIRFLOW_CONN_AWS_DEFAULT": "aws://AKIA:secret@",
    "AIRFLOW_VAR_API_TOKEN": "token", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "session", "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_TRACKING_TOKEN": "token",
    "MLFLEET_OPTUNA_STORAGE_URL": "postgresql://optuna:pw@db/optuna",
    "MLFLEET_MLFLOW_TRACKING_URI": "postgresql://mlflow:pw@db/mlflow",
}
KEPT = {"PATH": "/usr/bin", "HOME": "/home/u", "PYTHONPATH": "/x", "AIRFLOW_HOME": "/a", "MLFLEET_HOME": "/m",
        "AWS_DEFAULT_REGION": "eu-west-1", "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "0"}


def test_training_env_drops_the_secrets_and_keeps_the_rest() -> None:
    env = training_env({**SECRETS, **KEPT}, MLFLEET_WORKERS="4")
    assert env == {**KEPT, "MLFLEET_WORKERS": "4"}
