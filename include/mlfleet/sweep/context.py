"""The sweep context: what `prepare` decided, typed, written once beside the results.

Tasks hand each other only a `SweepRef` (a few strings, a small XCom) and load the context from
the results directory, so the spec, the feature list and the paths never travel through XCom.
The results directory is a local folder or an object-store prefix (`store_conn_id` says which
Airflow connection reads it): every path below goes through `mlfleet.backends.object_store.location`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mlfleet.backends.object_store import location, state_root
from mlfleet.spec import ExperimentSpec, parse_spec
from mlfleet.storage import Location, write_json_atomic

CONTEXT_FILE = "context.json"
DATA_FILE = "train.parquet"
HOLDOUT_FILE = "holdout.parquet"


def experiments_root(settings: Any) -> Location:
    """Where sweeps keep their state: `<home>/experiments`, or `<object store>/experiments` with
    sweep_state=object_store (read and written with the Airflow connection aws_conn_id)."""
    return state_root(settings, "experiments")


class SweepRef(BaseModel):
    """What a task returns for the next ones: which sweep, and where its context lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    experiment: str
    run_id: str
    results_dir: str
    store_conn_id: str | None = None

    @property
    def results_path(self) -> Location:
        return location(self.results_dir, conn_id=self.store_conn_id)


class AirflowRun(BaseModel):
    """The Airflow run that started a sweep (its round 0): it owns the sweep's folder, and only
    continuation runs of its DAG may continue the sweep (mlfleet.sweep.continuation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dag_id: str
    run_id: str

    def __str__(self) -> str:
        return f"{self.dag_id}/{self.run_id}"


class Champion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    features: list[str]


class Retraining(BaseModel):
    """What a retrain adds: the champion it competes with and why it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    champion: Champion
    drifted_features: list[str] = []
    drift_report: str | None = None
    warm_started_trials: int = 0


class SweepContext(BaseModel):
    """One sweep run: the validated spec, the staged data and where everything goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    experiment: str
    run_id: str
    results_dir: str
    spec: dict[str, Any]
    backend: str
    features: list[str]
    n_rows: int
    data_path: str
    data_sha256: str
    holdout_path: str | None = None
    study: str
    rounds: int
    n_trials: int
    # Remote backends: the content-addressed training set and the run's prefix in the object store.
    data_uri: str | None = None
    results_store_uri: str | None = None
    retraining: Retraining | None = None
    # The Airflow connection of an object-store results_dir (sweep_state=object_store); None: local.
    store_conn_id: str | None = None
    # The Airflow run whose prepare started the sweep; None for `mlfleet sweep` and direct calls.
    airflow_run: AirflowRun | None = None

    @cached_property
    def experiment_spec(self) -> ExperimentSpec:
        return parse_spec(self.spec)

    @property
    def metric(self) -> str:
        return str(self.spec["metric"])

    @property
    def data_fingerprint(self) -> str:
        """The training set's identity, as registered model versions record it."""
        return self.data_sha256[:16]

    @property
    def results_path(self) -> Location:
        return location(self.results_dir, conn_id=self.store_conn_id)

    def stored(self, uri: str) -> Location:
        """A path of this sweep's store (its data, its holdout) as a path object."""
        return location(uri, conn_id=self.store_conn_id)

    @property
    def timeout_minutes(self) -> float:
        return float(self.experiment_spec.budget.timeout_minutes)

    def ref(self) -> dict[str, str]:
        """The XCom that names this sweep."""
        return SweepRef(experiment=self.experiment, run_id=self.run_id, results_dir=self.results_dir,
                        store_conn_id=self.store_conn_id).model_dump(exclude_none=True)

    def save(self) -> SweepContext:
        write_json_atomic(self.results_path / CONTEXT_FILE, self.model_dump(mode="json"))
        return self

    @classmethod
    def load(cls, ref: SweepRef | dict[str, Any] | str | Path | Location) -> SweepContext:
        """From a `SweepRef` (or its dict), or a results directory (a local path or a path object)."""
        if isinstance(ref, (SweepRef, dict)):
            directory = (ref if isinstance(ref, SweepRef) else SweepRef.model_validate(ref)).results_path
        else:
            directory = location(ref)
        path = directory / CONTEXT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no sweep context at {path}; did the sweep's prepare task run?")
        return cls.model_validate_json(path.read_text())
