"""Real MLflow on SQLite under a temporary MLFLEET_HOME; one store per module (creating one costs ~3 s)."""

import pandas as pd
import pytest

from mlfleet import results
from mlfleet.results.tracking import ROLE_TAG, SWEEP_TAG


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    from mlfleet.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLEET_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLEET_MLFLOW_TRACKING_URI", raising=False)
        yield get_settings()


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    return X, y, model


def client(settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri)


def count_runs(settings, experiment, run_id, role):
    exp = client(settings).get_experiment_by_name(experiment)
    query = f"tags.`{SWEEP_TAG}` = '{run_id}' and tags.`{ROLE_TAG}` = '{role}'"
    return client(settings).search_runs([exp.experiment_id], filter_string=query, max_results=1000)


ROWS = [
    {"trial_id": f"xgboost-{i}", "model": "xgboost", "params": {"max_depth": i, "booster": "gbtree"},
     "fold_scores": [0.9, 0.8], "mean_score": 0.85, "std_score": 0.05, "fit_seconds": 1.25, "status": "success",
     "error": None}
    for i in range(3)
] + [{"trial_id": "lr-x", "model": "logistic_l1", "params": {"C": -1.0}, "fold_scores": None, "mean_score": None,
      "std_score": None, "fit_seconds": 0.5, "status": "failed", "error": "ValueError: C must be positive"}]


def test_log_trials_is_idempotent(settings):
    assert results.log_trials(settings=settings, experiment="sweeps", run_id="r1", rows=ROWS, metric="roc_auc") == 4
    assert results.log_trials(settings=settings, experiment="sweeps", run_id="r1", rows=ROWS, metric="roc_auc") == 0
    children = count_runs(settings, "sweeps", "r1", "trial")
    (parent,) = count_runs(settings, "sweeps", "r1", "sweep")
    assert len(children) == 4
    assert parent.info.run_name == "r1" and parent.info.status == "FINISHED"
    exp = client(settings).get_experiment_by_name("sweeps")
    assert exp.artifact_location == settings.artifact_root.as_uri()

    by_id = {r.data.tags["mlfleet.trial_id"]: r for r in children}
    ok = by_id["xgboost-2"]
    assert ok.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert ok.data.params == {"max_depth": "2", "booster": "gbtree", "model": "xgboost"}
    assert ok.data.metrics == {"mean_roc_auc": 0.85, "std_roc_auc": 0.05, "fold_1_roc_auc": 0.9,
                               "fold_2_roc_auc": 0.8, "fit_seconds": 1.25}
    bad = by_id["lr-x"]
    assert (bad.info.status, bad.data.tags["mlfleet.status"]) == ("FAILED", "failed")
    assert bad.data.tags["mlfleet.error"] == "ValueError: C must be positive"
    assert bad.data.metrics == {"fit_seconds": 0.5}

    extra = {**ROWS[0], "trial_id": "xgboost-9"}
    more = ROWS + [extra]
    assert results.log_trials(settings=settings, experiment="sweeps", run_id="r1", rows=more, metric="roc_auc") == 1
    assert len(count_runs(settings, "sweeps", "r1", "trial")) == 5
    assert len(count_runs(settings, "sweeps", "r1", "sweep")) == 1


@pytest.fixture(scope="module")
def registered(settings, data):
    X, _, model = data

    def register(run_id, score):
        return results.register_model(settings=settings, experiment="churn", run_id=run_id, model=model,
                                      X_sample=X.head(5), reference=X, tags={"mlfleet.spec": "abc"}, score=score)

    return register("sweep-a", 0.99), register("sweep-a", 0.5), register("sweep-b", 0.98)


def test_register_champion_then_challenger_idempotent(settings, registered):
    first, again, second = registered
    assert (first["name"], first["version"], first["alias"]) == ("churn", "1", "champion")
    assert again == first
    assert (second["version"], second["alias"]) == ("2", "challenger")
    assert len(client(settings).search_model_versions("name = 'churn'")) == 2
    assert len(count_runs(settings, "churn", "sweep-a", "best")) == 1
    best_run = client(settings).get_run(first["run_id"])
    assert best_run.info.run_name == "sweep-a-best" and best_run.data.tags[SWEEP_TAG] == "sweep-a"

    champ = results.champion(settings, "churn")
    assert (champ["version"], champ["model_uri"], champ["run_id"]) == ("1", "models:/churn@champion", first["run_id"])
    assert champ["tags"]["mlfleet.spec"] == "abc" and champ["tags"]["mlfleet.score"] == "0.99"
    assert champ["tags"][SWEEP_TAG] == "sweep-a"
    assert results.champion(settings, "no-such-model") is None
    assert results.list_champions(settings) == ["churn"]


def test_load_model_and_reference(settings, data, registered):
    X, y, model = data
    loaded = results.load_model(settings, results.champion(settings, "churn")["model_uri"])
    assert (loaded.predict(X) == model.predict(X)).all()
    assert (loaded.predict(X) == y).mean() > 0.95
    pd.testing.assert_frame_equal(results.load_reference(settings, "churn"), X)
    pd.testing.assert_frame_equal(results.load_reference(settings, "churn", alias="challenger"), X)


def test_set_alias_and_version_tags(settings, registered):
    results.set_alias(settings, "churn", "champion", 2)
    results.record_version_tags(settings, "churn", 2, {"mlfleet.promoted_by": "drift", "mlfleet.psi": 0.3})
    champ = results.champion(settings, "churn")
    assert champ["version"] == "2" and champ["run_id"] == registered[2]["run_id"]
    assert champ["tags"]["mlfleet.promoted_by"] == "drift" and champ["tags"]["mlfleet.psi"] == "0.3"
    results.set_alias(settings, "churn", "champion", 1)
    assert results.champion(settings, "churn")["version"] == "1"
