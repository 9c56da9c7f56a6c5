"""check_model on statistics only: the champion's reference JSON (or, for an older version, its
training frame) against the window's per-day statistics; real MLflow on SQLite, no Spark or Feast."""

from __future__ import annotations

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlfleet import results
from mlfleet.drift import sketch
from mlfleet.drift.monitor import check_model
from mlfleet.drift.window import statistics_root

FEATURES = ["spend_7d", "orders_7d"]


def _training_frame(seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"spend_7d": rng.gamma(2, 30 + shift, 800), "orders_7d": rng.poisson(3 + shift / 10, 800)
                         .astype(float)})


def _write_days(settings, frames: list[pd.DataFrame]) -> None:
    for offset, frame in enumerate(frames):
        rows = [pd.DataFrame({"feature": f, "bucket": s.bucket, "count": s.count, "low": s.low, "high": s.high})
                for f, s in sketch.from_frame(frame, FEATURES).items()]
        day = date(2026, 9, 1) + timedelta(offset)
        folder = Path(statistics_root(settings)) / "customer_spend" / f"feature_date={day}"
        folder.mkdir(parents=True)
        pd.concat(rows).to_parquet(folder / "part-00000.parquet", index=False)


def _register(settings, name: str, X: pd.DataFrame, *, legacy: bool) -> None:
    """A version as finalize registers it now, or as it did before statistics (the frame itself)."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit(X, np.zeros(len(X)))
    tags = {"mlfleet.feature_service": "churn_v1", "mlfleet.features": json.dumps(FEATURES)}
    if not legacy:
        results.register_model(settings=settings, experiment=name, run_id=f"{name}-sweep", model=model,
                               X_sample=X.head(5), reference_statistics=sketch.of_frame(X), tags=tags, score=0.5)
        return
    import mlflow.sklearn

    results.configure(settings)
    with mlflow.start_run(experiment_id=results.experiment_id(settings, name)), tempfile.TemporaryDirectory() as tmp:
        X.to_parquet(Path(tmp) / "reference.parquet", index=False)
        mlflow.log_artifact(str(Path(tmp) / "reference.parquet"), artifact_path="reference")
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, name, tags=tags).version
    results.set_alias(settings, name, "champion", version)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    from mlfleet.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLEET_HOME", str(tmp_path_factory.mktemp("home")))
        mp.delenv("MLFLEET_MLFLOW_TRACKING_URI", raising=False)
        settings = get_settings()
        _write_days(settings, [_training_frame(day, shift=30.0) for day in range(9)])  # a shifted window
        yield settings


@pytest.mark.parametrize("legacy", [False, True], ids=["statistics", "frame-before-statistics"])
def test_check_model_reads_statistics_and_finds_the_shift(settings, legacy: bool) -> None:
    name = f"churn-{'legacy' if legacy else 'new'}"
    reference = _training_frame(100)
    _register(settings, name, reference, legacy=legacy)
    report = check_model(settings, name)
    assert report["drift"] is True and report["drifted_features"] == ["orders_7d", "spend_7d"]
    assert report["n_reference"] == len(reference) and report["n_current"] == 7 * 800  # the newest 7 of 9 days
    assert report["features"]["spend_7d"]["histogram"].keys() == {"edges", "reference", "current"}
    assert Path(report["report_path"]).exists()


def test_a_model_not_trained_on_feast_features_is_skipped(settings) -> None:
    assert check_model(settings, "no-such-model") is None
