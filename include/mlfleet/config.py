"""One typed settings object, read from `MLFLEET_*` environment variables at run time."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

Backend = Literal["local", "sagemaker", "kubernetes"]
EtlBackend = Literal["spark_local", "emr_serverless"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
SweepState = Literal["home", "object_store"]


class InstanceType(BaseModel):
    """One row of the SageMaker instance table: what an instance type offers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    cpu: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    gpu: int = Field(default=0, ge=0)


# Smallest first: a batch gets the first row that covers its trials' `resources`, preferring rows
# with exactly the GPUs asked for.
DEFAULT_SAGEMAKER_INSTANCES = [
    InstanceType(instance_type="ml.m5.large", cpu=2, memory_gb=8),
    InstanceType(instance_type="ml.m5.xlarge", cpu=4, memory_gb=16),
    InstanceType(instance_type="ml.m5.2xlarge", cpu=8, memory_gb=32),
    InstanceType(instance_type="ml.m5.4xlarge", cpu=16, memory_gb=64),
    InstanceType(instance_type="ml.m5.12xlarge", cpu=48, memory_gb=192),
    InstanceType(instance_type="ml.m5.24xlarge", cpu=96, memory_gb=384),
    InstanceType(instance_type="ml.g5.xlarge", cpu=4, memory_gb=16, gpu=1),
    InstanceType(instance_type="ml.g5.2xlarge", cpu=8, memory_gb=32, gpu=1),
    InstanceType(instance_type="ml.g5.12xlarge", cpu=48, memory_gb=192, gpu=4),
]
DEFAULT_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


class Limits(BaseSettings):
    """What one DAG run may make the deployment spend: the most a spec may ask for, and how long a task
    may run. Whoever can trigger a DAG writes the spec; the deployment sets these (MLFLEET_MAX_*).

    Part of `Settings`, and also read on its own where a whole `Settings` is not wanted: wherever a spec
    is validated (`mlfleet.spec`), and when a DAG file sets its tasks' execution_timeout.
    """

    model_config = SettingsConfigDict(env_prefix="MLFLEET_", frozen=True)

    # One batch's budget.timeout_minutes, at most (24 hours).
    max_timeout_minutes: float = Field(default=1440, gt=0, allow_inf_nan=False)
    # budget.max_parallel: batches (SageMaker jobs, pods) one sweep runs side by side, at most.
    max_parallel: int = Field(default=64, ge=1)
    # resources (a trial's, or a model's own): the largest single SageMaker training instance,
    # ml.p5.48xlarge (192 vCPU, 2,048 GiB, 8 GPUs).
    max_cpu: float = Field(default=192, gt=0, allow_inf_nan=False)
    max_memory_gb: float = Field(default=2048, gt=0, allow_inf_nan=False)
    max_gpu: int = Field(default=8, ge=0)
    # search.batch_size: trials a bayes round proposes at once.
    max_batch_size: int = Field(default=256, ge=1)
    # Trials one sweep may have (search.n_trials, or a grid's count): 10x the largest measured
    # (10,000, docs/benchmarks-large.md).
    max_trials: int = Field(default=100_000, ge=1)
    # Rounds one bayes sweep may run (ceil(n_trials / batch_size)); each is a DAG run of its own.
    max_rounds: int = Field(default=1000, ge=1)
    # execution_timeout of every task but a batch (prepare, finalize, the feature and drift tasks).
    # A batch task's is max_timeout_minutes plus this much (staging, start-up, waiting for capacity).
    task_timeout_minutes: float = Field(default=120, gt=0, allow_inf_nan=False)


class Settings(Limits):
    """Everything an operator may change without editing a DAG."""

    model_config = SettingsConfigDict(env_prefix="MLFLEET_", frozen=True)

    home: Path = Field(default=Path(".mlfleet"), description="Root of all local state.")
    feature_repo: Path = Field(default=PROJECT_ROOT / "feature_repo")
    # The Feast config file, a name inside feature_repo (or an absolute path): feature_store.yaml
    # (SQLite online store) locally, feature_store.production.yaml (Redis) in production.
    feast_config: Path = Path("feature_store.yaml")
    backend: Backend = "local"
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Defaults to a SQLite store under home."
    )
    # Where a spec's `dataset.path` may point, os.pathsep-separated: a spec pasted into a trigger form
    # must not read any file the worker can. Unset: `<home>/data` and the project's `data/`.
    data_roots: str | None = None
    # Where people open MLflow's own UI (e.g. http://mlflow.internal:5000): the results pages
    # link each trial and model version there. Unset: the pages show the MLflow ids only.
    mlflow_ui_url: str | None = None
    # Sweeps of up to this many trials log every trial as a nested MLflow run; larger ones log the best
    # this many and every trial in the sweep run's leaderboard.csv. A run costs ~30 ms of CPU in MLflow's
    # SQLAlchemy store (measured on 2 cores), so 200 runs are about 6 s of a sweep's last task; 2,000 took a minute.
    mlflow_trial_runs: int = Field(default=200, ge=0)
    # Optuna's studies: a database URL (PostgreSQL when several machines run tasks); unset, Optuna's
    # journal file under home, which takes a finished trial in ~0.4 ms where SQLite takes ~12 ms
    # (measured side by side: 2,000 add_trials, 0.85 s against 24.2 s; a 2,000-trial sweep records them all).
    optuna_storage_url: str | None = None
    # Local backend: worker processes per batch (0 = every core of this machine).
    local_workers: int = 0
    # Planner: a batch aims at this many predicted seconds of work per core.
    batch_target_seconds: float = 60.0
    # Planner: the runtime model of a model type is fitted on at most this many of its newest
    # recorded folds (fitting runs in every sweep's prepare task and must stay cheap).
    fit_history_sample: int = Field(default=1000, ge=10)
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
    # Remote backends (SageMaker, Kubernetes, EMR Serverless) stage data and read results here.
    object_store_uri: str | None = Field(default=None, description="s3://bucket/prefix")
    # Where a sweep's state (context, rounds, batch inputs and results, leaderboard) lives: under
    # MLFLEET_HOME (one machine, or workers sharing a volume), or under MLFLEET_OBJECT_STORE_URI,
    # so that workers share no disk (CeleryExecutor, KubernetesExecutor). See docs/deploy.md.
    sweep_state: SweepState = "home"
    # Where new MLflow experiments keep their artifacts (models, plots). Unset: under home with a
    # local tracking store, under the object store with sweep_state=object_store, else the
    # tracking server's default.
    mlflow_artifact_uri: str | None = None
    aws_conn_id: str = "aws_default"
    aws_region: str | None = None
    trial_image: str = Field(default="mlfleet-trial:latest", description="the Dockerfile's `trial` target, pushed")
    # SageMaker
    sagemaker_role_arn: str | None = None
    sagemaker_instance_types: list[InstanceType] = Field(default_factory=lambda: list(DEFAULT_SAGEMAKER_INSTANCES))
    sagemaker_volume_gb: int = Field(default=30, ge=1)
    sagemaker_deferrable: bool = True
    sagemaker_check_interval: int = Field(default=30, ge=1)
    # Stream the job's CloudWatch log into the task log while a non-deferrable task waits (the
    # provider re-describes every 30 s then); a deferred task reads it once, when it defers.
    sagemaker_print_log: bool = True
    sagemaker_spot: bool = False
    # Spot: how long to wait for capacity on top of the run time (MaxWaitTimeInSeconds - MaxRuntimeInSeconds).
    sagemaker_spot_wait_seconds: int = Field(default=3600, ge=0)
    # Kubernetes
    kubernetes_conn_id: str = "kubernetes_default"
    kubernetes_in_cluster: bool | None = None
    kubernetes_namespace: str = Field(default="mlfleet", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    kubernetes_service_account: str | None = "mlfleet-trial"
    kubernetes_image_pull_policy: PullPolicy = "IfNotPresent"
    kubernetes_node_selector: dict[str, str] = Field(default_factory=dict)
    kubernetes_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    kubernetes_gpu_node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    kubernetes_gpu_tolerations: list[dict[str, Any]] = Field(default_factory=lambda: list(DEFAULT_GPU_TOLERATIONS))
    kubernetes_deferrable: bool = False
    kubernetes_startup_timeout_seconds: int = Field(default=600, ge=1)
    # ETL: local Spark, or the same script on EMR Serverless.
    etl_backend: EtlBackend = "spark_local"
    # The Feast offline store training sets and materialization read through, where the Feast file
    # leaves it to mlfleet (feature_store.yaml): unset, DuckDB for a local feature root and `file`
    # (dask, through s3fs) for an s3:// one; `duckdb` on S3 where DuckDB can download httpfs.
    offline_store: str | None = None
    # DuckDB's own memory limit for the embedded offline store (materialize, training sets): above it
    # DuckDB spills to `<home>/duckdb-spill` instead of holding the interval (docs/data-scale.md).
    duckdb_memory_limit: str = "1GB"
    emr_application_id: str | None = None
    emr_execution_role_arn: str | None = None
    # Extra spark-submit parameters for EMR (e.g. the Python environment archive with Feast).
    emr_spark_submit_parameters: str = ""
    emr_deferrable: bool = True
    # How often the operator (or its trigger) asks EMR Serverless whether the job run has ended.
    emr_check_interval: int = Field(default=30, ge=1)

    # Local Airflow (`mlfleet up`)
    airflow_port: int = 8080
    airflow_username: str = "admin"

    # Demo data
    demo_customers: int = 400
    demo_days: int = 84
    demo_start: str = "2026-08-01"
    demo_shift_day: int = 49

    @field_validator("object_store_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        # A bucket is required: "s3://" alone would become "s3:" and every key "s3:/datasets/...".
        if value is not None and (not value.startswith("s3://") or not value[len("s3://"):].split("/")[0]):
            raise ValueError(f"object_store_uri must be an s3://bucket/prefix URI, got {value!r}")
        return value.rstrip("/") if value else value

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def feature_root(self) -> str:
        """Where feature data lives: raw events, offline tables, labels and the Feast registry.

        MLFLEET_HOME with local Spark; the object store when the ETL runs on EMR Serverless, which
        cannot write to a worker's disk (its check_settings names the missing object store).
        """
        if self.etl_backend == "emr_serverless" and self.object_store_uri:
            return self.object_store_uri
        return str(self.home_dir)

    @property
    def feast_config_path(self) -> Path:
        """The Feast config file `feast_config` names, checked to exist (Feast's own error names no setting)."""
        repo = self.feature_repo.expanduser().resolve()
        path = repo / self.feast_config.expanduser()
        if not path.is_file():
            known = ", ".join(sorted(p.name for p in repo.glob("*.yaml"))) or "none"
            raise FileNotFoundError(f"feast_config: {path} does not exist; set MLFLEET_FEAST_CONFIG to a file of "
                                    f"{repo} ({known}) or an absolute path")
        return path

    @property
    def labels_uri(self) -> str:
        """The churn labels the feature job writes: the entity rows training sets start from."""
        return f"{self.feature_root}/offline/labels"

    @property
    def raw_events_dir(self) -> Path:
        return self.home_dir / "raw" / "events"

    @property
    def offline_dir(self) -> Path:
        return self.home_dir / "offline"

    @property
    def allowed_data_roots(self) -> list[Path]:
        """The folders a `dataset.path` must lie in (resolved, so a symlink cannot lead out)."""
        if self.data_roots:
            roots = [Path(p).expanduser() for p in self.data_roots.split(os.pathsep) if p.strip()]
        else:
            roots = [self.home_dir / "data", PROJECT_ROOT / "data"]
        return [root.resolve() for root in roots]

    @property
    def experiments_dir(self) -> Path:
        return self.home_dir / "experiments"

    def require_object_store(self, setting: str) -> str:
        """MLFLEET_OBJECT_STORE_URI, or an error that names the setting that needs it."""
        if not self.object_store_uri:
            raise ValueError(f"{setting}: needs an object store; set MLFLEET_OBJECT_STORE_URI=s3://bucket/prefix")
        return self.object_store_uri

    @property
    def store_conn_id(self) -> str | None:
        """The Airflow connection sweep state is read and written with (None: a local folder)."""
        return self.aws_conn_id if self.sweep_state == "object_store" else None

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
        """A database URL, or the path of Optuna's journal file (see `mlfleet.tuning.storage`)."""
        return self.optuna_storage_url or str(self.home_dir / "optuna.journal")

    @property
    def fit_history_path(self) -> Path:
        """Every finished CV fold of every sweep on this machine, for predicting trial runtimes."""
        return self.home_dir / "history.db"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home_dir / "mlartifacts"

    @property
    def local_tracking(self) -> bool:
        """True when MLflow's store is a file on this machine (SQLite or a folder)."""
        uri = self.tracking_uri
        return uri.startswith(("sqlite:", "file:")) or "://" not in uri

    @property
    def artifact_location(self) -> str | None:
        """Artifact location of a new MLflow experiment (see `mlflow_artifact_uri`)."""
        if self.mlflow_artifact_uri:
            return self.mlflow_artifact_uri.rstrip("/")
        if self.sweep_state == "object_store":
            return f"{self.require_object_store('sweep_state')}/mlartifacts"
        return self.artifact_root.as_uri() if self.local_tracking else None

    @property
    def workers(self) -> int:
        return self.local_workers or os.cpu_count() or 1


def get_settings() -> Settings:
    """Read settings now (not at import), and export what the Feast repo's YAML and sources expand."""
    from mlfleet.storage.private import private_dir  # storage imports nothing of config; lazily all the same

    settings = Settings()
    private_dir(settings.home_dir)  # 0700: it holds the deployment's secrets and credentials
    export_feature_env(settings)
    return settings


# What feature_store.yaml's `offline_store: type:` expands to, and what sources.py reads to declare
# the offline tables as Spark sources for the Spark offline store (the other stores read FileSources).
# mlfleet always writes it from settings: a value left in the environment by an earlier task, or
# for another feature root, is never read back as a choice (the user's is `MLFLEET_OFFLINE_STORE`).
FEAST_OFFLINE_STORE = "MLFLEET_FEAST_OFFLINE_STORE"


def export_feature_env(settings: Settings) -> None:
    """MLFLEET_HOME (the online store), MLFLEET_FEATURE_ROOT (registry, sources), absolute, and
    MLFLEET_FEAST_OFFLINE_STORE (the offline store), all of which the Feast repo expands."""
    os.environ["MLFLEET_HOME"] = str(settings.home_dir)
    os.environ["MLFLEET_FEATURE_ROOT"] = settings.feature_root
    os.environ[FEAST_OFFLINE_STORE] = feast_offline_store(settings)


def feast_offline_store(settings: Settings) -> str:
    """The Feast offline store training sets are read through.

    A type the configured file names outright wins (production's `spark`); else the setting
    `MLFLEET_OFFLINE_STORE`; else DuckDB for a local feature root and Feast's dask store (`file`)
    for an s3:// one, since DuckDB reaches S3 only through its httpfs extension, which it
    downloads on first use (impossible offline).
    """
    from mlfleet.storage import is_remote

    return (_named_offline_store(settings) or settings.offline_store
            or ("file" if is_remote(settings.feature_root) else "duckdb"))


def _named_offline_store(settings: Settings) -> str | None:
    """`offline_store.type` of the configured Feast file when it is not a `${VARIABLE}`."""
    import yaml

    try:
        document = yaml.safe_load(settings.feast_config_path.read_text())
    except (OSError, yaml.YAMLError):  # missing or broken: repository.repo_config names the problem
        return None
    offline = document.get("offline_store") if isinstance(document, dict) else None
    kind = offline.get("type") if isinstance(offline, dict) else offline
    return kind if isinstance(kind, str) and "$" not in kind else None
