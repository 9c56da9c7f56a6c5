"""The environment a local training process gets: its task's, less the deployment's secrets.

A batch's training process runs model code (scikit-learn, torch, the spec's estimators and their
parameters) and starts worker processes of its own; it reads none of Airflow's configuration, no
connection and no cloud credential (the local backend stages its data on disk). So the secrets a
task process holds in its environment stay with the task: Airflow's whole configuration by
environment (`AIRFLOW__*`: the Fernet key, the JWT and API secrets, the metadata DB's URL with its
password), connections and variables (`AIRFLOW_CONN_*`, `AIRFLOW_VAR_*`), AWS keys, MLflow's
credentials, and the stores' URLs, which may hold a password.

Every local trainer is a new interpreter (mlfleet.backends.local), so this environment is all it
starts with: nothing of its task process's memory, where Airflow's configuration is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

SECRET_ENV_VARS = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
    "MLFLEET_MLFLOW_TRACKING_URI", "MLFLEET_OPTUNA_STORAGE_URL",
})
SECRET_ENV_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")


def is_secret(name: str) -> bool:
    return name.upper() in SECRET_ENV_VARS or name.upper().startswith(SECRET_ENV_PREFIXES)


def training_env(environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`environ` without its secrets (`is_secret`), with `extra` on top."""
    return {**{k: v for k, v in environ.items() if not is_secret(k)}, **extra}
