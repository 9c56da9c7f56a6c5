"""MLflow's model registry (versions, champion/challenger aliases, drift references) against real
MLflow on SQLite under a temporary MLFLEET_HOME; one store per module (creating one costs ~3 s).
Promotion by retrains (`promote_champion`): tests/unit/retraining/test_promotion.py."""

import pandas as pd
import pytest

from mlfleet import results
from mlfleet.drift import sketch
from mlfleet.results.tracking import ROLE_TAG, SWEEP_TAG


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

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def count_runs(settings, experiment, run_id, role):
    exp = client(settings).get_experiment_by_name(experiment)
    query = f"tags.`{SWEEP_TAG}` = '{run_id}' and tags.`{ROLE_TAG}` = '{role}'"
    return client(settings).search_runs([exp.experiment_id], filter_string=query, max_results=1000)


@pytest.fixture(scope="module")
def registered(settings, data):
    X, _, model = data

    def register(run_id, score):
        return results.register_model(settings=settings, experiment="churn", run_id=run_id, model=model,
                                      X_sample=X.head(5), reference_statistics=sketch.of_frame(X),
                                      tags={"mlfleet.spec": "abc"}, score=score)

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
    # The drift reference is the training frame's statistics, not its rows.
    artifacts = {a.path for a in client(settings).list_artifacts(results.champion(settings, "churn")["run_id"],
                                                                  "reference")}
    assert artifacts == {"reference/statistics.json"}
    for alias in ("champion", "challenger"):
        sketches, rows = sketch.from_json(results.load_reference_statistics(settings, "churn", alias=alias))
        assert rows == len(X) and list(sketches) == list(X.columns)
        for column, summary in sketches.items():
            expected = sketch.from_values(X[column])
            assert summary.count.tolist() == expected.count.tolist() and summary.low.tolist() == expected.low.tolist()


def test_a_version_registered_before_statistics_keeps_its_frame(settings, data):
    """Older versions logged the whole training frame: it still loads (the drift check sketches it)."""
    import tempfile
    from pathlib import Path

    import mlflow
    import mlflow.sklearn

    X, _, model = data
    results.configure(settings)
    with mlflow.start_run(experiment_id=results.experiment_id(settings, "legacy")), \
            tempfile.TemporaryDirectory() as tmp:
        X.to_parquet(Path(tmp) / "reference.parquet", index=False)
        mlflow.log_artifact(str(Path(tmp) / "reference.parquet"), artifact_path="reference")
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, "legacy").version
    results.set_alias(settings, "legacy", "champion", version)
    pd.testing.assert_frame_equal(results.load_reference(settings, "legacy"), X)
    assert results.load_reference_statistics(settings, "legacy") is None


def test_set_alias_and_version_tags(settings, registered):
    results.set_alias(settings, "churn", "champion", 2)
    results.record_version_tags(settings, "churn", 2, {"mlfleet.promoted_by": "drift", "mlfleet.psi": 0.3})
    champ = results.champion(settings, "churn")
    assert champ["version"] == "2" and champ["run_id"] == registered[2]["run_id"]
    assert champ["tags"]["mlfleet.promoted_by"] == "drift" and champ["tags"]["mlfleet.psi"] == "0.3"
    results.set_alias(settings, "churn", "champion", 1)
    assert results.champion(settings, "churn")["version"] == "1"


def test_registered_versions_are_the_ones_mlfleet_registered(settings, registered):
    """The results UI's source of models: versions `register_model` tagged with their sweep, never a
    model someone else keeps in the same registry."""
    from mlfleet.results.registry import registered_versions

    mlflow_client = client(settings)
    mlflow_client.create_registered_model("someone-elses")
    mlflow_client.create_model_version("someone-elses", source="s3://elsewhere/model", tags={"team": "x"})
    found = registered_versions(settings)
    assert "someone-elses" not in {v["name"] for v in found}
    churn = [(v["version"], v["sweep_run_id"]) for v in found if v["name"] == "churn"]
    assert churn == [("1", "sweep-a"), ("2", "sweep-b")]
    assert [(v["name"], v["version"]) for v in registered_versions(settings, "churn")] == [("churn", "1"), ("churn", "2")]
    assert registered_versions(settings, "someone-elses") == []
