"""One typed settings object, read from `MLFLEET_*` environment variables at run time."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

Backend = Literal["local", "sagemaker", "kubernetes"]


class Settings(BaseSettings):
    """Everything an operator may change without editing a DAG."""

    model_config = SettingsConfigDict(env_prefix="MLFLEET_", frozen=True)

    home: Path = Field(default=Path(".mlfleet"), description="Root of all local state.")
    feature_repo: Path = Field(default=PROJECT_ROOT / "feature_repo")
    backend: Backend = "local"
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Defaults to a SQLite store under home."
    )
    # Local backend: worker processes per batch (0 = every core of this machine).
    local_workers: int = 0
    # Planner: a batch aims at this many predicted seconds of work per core.
    batch_target_seconds: float = 60.0
    # ETL
    etl_lookback_days: int = 28
    churn_horizon_days: int = 14
    # Drift
    drift_window_days: int = 7
    drift_psi_threshold: float = 0.25
    drift_ks_pvalue: float = 0.001
    drift_ks_statistic: float = 0.1
    # Retraining
    holdout_days: int = 14
    retrain_trials: int = 8
    retrain_batch_size: int = 4
    # Local Airflow (`mlfleet up`)
    airflow_port: int = 8080
    airflow_username: str = "admin"

    # Demo data
    demo_customers: int = 400
    demo_days: int = 84
    demo_start: str = "2026-08-01"
    demo_shift_day: int = 49

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def raw_events_dir(self) -> Path:
        return self.home_dir / "raw" / "events"

    @property
    def offline_dir(self) -> Path:
        return self.home_dir / "offline"

    @property
    def labels_dir(self) -> Path:
        return self.offline_dir / "labels"

    @property
    def experiments_dir(self) -> Path:
        return self.home_dir / "experiments"

    @property
    def drift_dir(self) -> Path:
        return self.home_dir / "drift"

    @property
    def decisions_dir(self) -> Path:
        return self.home_dir / "decisions"

    @property
    def airflow_home(self) -> Path:
        return self.home_dir / "airflow"

    @property
    def optuna_storage(self) -> str:
        return f"sqlite:///{self.home_dir / 'optuna.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home_dir / "mlartifacts"

    @property
    def workers(self) -> int:
        return self.local_workers or os.cpu_count() or 1


def get_settings() -> Settings:
    """Read settings now (not at import), and export MLFLEET_HOME absolute for Feast's YAML."""
    settings = Settings()
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLEET_HOME"] = str(settings.home_dir)
    return settings
