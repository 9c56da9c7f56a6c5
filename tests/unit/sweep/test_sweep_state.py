"""Sweep state in the object store: the settings it needs are checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

SPEC = {"name": "state-in-store", "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}]}


def test_object_store_state_without_a_shared_optuna_database_is_refused_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlfleet.config import get_settings
    from mlfleet.spec import SpecError
    from mlfleet.sweep import prepare

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLEET_SWEEP_STATE", "object_store")
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", "s3://bucket/state")
    monkeypatch.delenv("MLFLEET_OPTUNA_STORAGE_URL", raising=False)
    with pytest.raises(SpecError, match="MLFLEET_SWEEP_STATE: object_store needs MLFLEET_OPTUNA_STORAGE_URL"):
        prepare(SPEC, settings=get_settings())
    monkeypatch.setenv("MLFLEET_OPTUNA_STORAGE_URL", "postgresql://db/optuna")
    monkeypatch.delenv("MLFLEET_MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SpecError, match="needs MLFLEET_MLFLOW_TRACKING_URI"):
        prepare(SPEC, settings=get_settings())
    assert not (tmp_path / "home" / "experiments").exists()
