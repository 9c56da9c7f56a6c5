"""Promotion is a compare-and-set, once per retrain, against a real MLflow (SQLite under tmp_path).

Real retrains: the champion's spec as a bayes search (`retraining.prepare`), its batch run by the
local backend, then `retraining.decide`. The champion they start from is registered by hand: a
model that predicts the prior (holdout ROC AUC 0.5) under a spec whose logistic regression
beats it, so every challenger wins on the holdout and only the alias rules decide promotion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from mlfleet import results, retraining
from mlfleet.results.tracking import SWEEP_TAG
from mlfleet.sweep import SweepContext, propose, run_batch

NAME = "churn-promotion"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mlfleet.config import get_settings

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"MLFLEET_HOME": str(home), "MLFLEET_DATA_ROOTS": str(home / "data"),
                           "MLFLEET_RETRAIN_TRIALS": "2", "MLFLEET_RETRAIN_BATCH_SIZE": "2",
                           "MLFLEET_HOLDOUT_DAYS": "14", "MLFLEET_LOCAL_WORKERS": "1",
                           "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
            mp.setenv(key, value)
        mp.delenv("MLFLEET_MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLEET_OPTUNA_STORAGE_URL", raising=False)
        mp.delenv("MLFLEET_SWEEP_STATE", raising=False)
        yield get_settings()


def _dataset(settings: Any) -> tuple[Path, pd.DataFrame, list[str]]:
    """Breast cancer rows spread over 60 days: the newest 14 are the retrains' holdout."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    features = [c for c in frame.columns if c != "target"][:6]
    frame = frame[[*features, "target"]].copy()
    frame.insert(0, "customer_id", np.arange(len(frame)))
    frame.insert(1, "event_timestamp", pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(len(frame)) % 60, unit="D"))
    path = settings.home_dir / "data" / "churn.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path, frame, features


@pytest.fixture(scope="module")
def champion(settings: Any) -> str:
    """Version 1, the `champion`: the prior, registered with a spec a retrain can beat it with."""
    from sklearn.dummy import DummyClassifier

    from mlfleet.drift import sketch

    path, frame, features = _dataset(settings)
    spec = {"name": NAME, "task": "classification", "target": "target", "metric": "roc_auc",
            "dataset": {"path": str(path)}, "cv": {"folds": 2, "seed": 0},
            "models": [{"type": "logistic_l1", "params": {"C": [0.5, 5.0]}}]}
    X = frame[features]
    info = results.register_model(
        settings=settings, experiment=NAME, run_id="seed", model=DummyClassifier(strategy="prior").fit(X, frame["target"]),
        X_sample=X.head(5).astype("float64"), reference_statistics=sketch.of_frame(X), score=0.5,
        tags={"mlfleet.spec": json.dumps(spec), "mlfleet.features": json.dumps(features)},
    )
    assert info["version"] == "1" and _champion(settings) == "1"
    return "1"


def _prepared(settings: Any, run_id: str) -> SweepContext:
    """A retrain prepared against today's champion, with its trials run: what `end_round` finds."""
    context = retraining.prepare({"model": NAME}, settings=settings, run_id=run_id)
    for round_index in range(context.rounds):
        for batch in propose(context, round_index=round_index, settings=settings):
            run_batch(context, batch, settings=settings)
    return context


def _client(settings: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _champion(settings: Any, name: str = NAME) -> str | None:
    """Who holds `champion` now, read from MLflow itself."""
    holder = _client(settings).get_registered_model(name).aliases.get("champion")
    return None if holder is None else str(holder)


def _versions(settings: Any, name: str = NAME) -> list[dict[str, Any]]:
    """Every version of the model, with the sweep (or retrain) that registered it and its tags."""
    found = _client(settings).search_model_versions(f"name = '{name}'")
    return sorted(({"version": str(mv.version), "sweep": mv.tags.get(SWEEP_TAG), "tags": dict(mv.tags)} for mv in found),
                  key=lambda v: int(v["version"]))


def _version_of(settings: Any, sweep: str) -> dict[str, Any]:
    (found,) = [v for v in _versions(settings) if v["sweep"] == sweep]
    return found


@pytest.fixture(scope="module")
def overlapping(settings: Any, champion: str) -> dict[str, Any]:
    """Two retrains prepared against v1; the second to start decides first and promotes."""
    first, second = _prepared(settings, "retrain-a"), _prepared(settings, "retrain-b")
    assert first.retraining.champion.version == second.retraining.champion.version == champion
    second_decision = retraining.decide(second, settings=settings)
    assert second_decision["promoted"], second_decision
    first_decision = retraining.decide(first, settings=settings)
    return {"first": first, "second": second, "first_decision": first_decision, "second_decision": second_decision}


def test_a_retrain_whose_champion_moved_since_it_was_prepared_does_not_promote(settings: Any,
                                                                                 overlapping: dict[str, Any]) -> None:
    first, second = overlapping["first_decision"], overlapping["second_decision"]
    assert first["challenger_score"] > first["champion_score"]  # it beat v1, the champion it was compared with
    assert not first["promoted"] and first["outcome"] == "stale"
    assert first["reason"] == (f"stale: champion moved from v1 to v{second['challenger_version']} "
                               "since this retrain was prepared")
    # The alias stays where the other retrain put it; the stale challenger is registered, not promoted.
    assert _champion(settings) == second["challenger_version"]
    assert _version_of(settings, "retrain-a")["tags"]["mlfleet.decision"] == "stale"
    recorded = json.loads((settings.home_dir / "decisions" / NAME / "retrain-a.json").read_text())
    assert recorded == first


def test_a_recorded_decision_is_returned_as_is_and_never_applied_again(settings: Any,
                                                                       overlapping: dict[str, Any]) -> None:
    # An operator rolls the champion back to v1; then the winning retrain's end_round is cleared (a replay).
    results.set_alias(settings, NAME, "champion", "1")
    versions = _versions(settings)

    replayed = retraining.decide(overlapping["second"], settings=settings)

    assert replayed == overlapping["second_decision"]
    assert _champion(settings) == "1"  # the rollback stands
    assert retraining.decide(overlapping["first"], settings=settings) == overlapping["first_decision"]
    assert _versions(settings) == versions  # nothing registered again


def _failing_once(monkeypatch: pytest.MonkeyPatch, alias: str) -> list[str]:
    """The task dies the first time it moves `alias` (MLflow's public client method, patched)."""
    from mlflow import MlflowClient

    original = MlflowClient.set_registered_model_alias
    died: list[str] = []

    def set_alias(self: Any, name: str, moved: str, version: str) -> None:
        if moved == alias and not died:
            died.append(version)
            raise RuntimeError(f"killed before {name}@{moved} -> v{version}")
        original(self, name, moved, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias)
    return died


def test_a_first_model_killed_between_register_and_alias_gets_champion_on_retry(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    from mlfleet.drift import sketch

    _, frame, features = _dataset(settings)
    X = frame[features]
    kwargs = dict(settings=settings, experiment="first-model", run_id="sweep-1",
                  model=LogisticRegression(max_iter=500).fit(X, frame["target"]), X_sample=X.head(5).astype("float64"),
                  reference_statistics=sketch.of_frame(X), tags={}, score=0.9)
    died = _failing_once(monkeypatch, "champion")
    with pytest.raises(RuntimeError, match="killed before"):
        results.register_model(**kwargs)

    info = results.register_model(**kwargs)  # the retry

    assert died == ["1"] and info["version"] == "1" and info["alias"] == "champion"
    assert _champion(settings, "first-model") == "1"
    assert [v["version"] for v in _versions(settings, "first-model")] == ["1"]


def test_a_retrain_killed_between_register_and_promotion_promotes_the_same_version_on_retry(
        settings: Any, overlapping: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The same crash in a retrain (the registry's retry path; a retry of today's code promoted too)."""
    results.set_alias(settings, NAME, "champion", "1")  # whatever the tests before left, v1 is the one to beat
    holder = _champion(settings)
    context = _prepared(settings, "retrain-c")
    assert context.retraining.champion.version == holder
    died = _failing_once(monkeypatch, "champion")
    with pytest.raises(RuntimeError, match="killed before"):
        retraining.decide(context, settings=settings)
    registered = _version_of(settings, "retrain-c")
    assert died == [registered["version"]]
    assert _champion(settings) == holder  # not moved yet

    decision = retraining.decide(context, settings=settings)  # the retry

    assert decision["promoted"] and decision["challenger_version"] == registered["version"]
    assert _champion(settings) == registered["version"]
    assert _version_of(settings, "retrain-c") == {**registered, "tags": {**registered["tags"], "mlfleet.decision": "promoted"}}
