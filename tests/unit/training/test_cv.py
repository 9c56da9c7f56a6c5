"""The key contract: a trial's fold scores are exactly scikit-learn's `cross_validate` test scores."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn import datasets
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate

from mlfleet.training.cv import CVConfig, cross_validate_trials
from mlfleet.training.zoo import build_estimator
from mlfleet.trials import trial_id

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning", "ignore::UserWarning")


@cache
def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X, y


def as_trials(model: str, grid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"trial_id": trial_id(model, p), "model": model, "params": p} for p in grid]


def sklearn_scores(model: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray, *, task: str, metric: str,
                   folds: int, seed: int) -> np.ndarray:
    n_classes = len(np.unique(y)) if task == "classification" else 0
    splitter = (StratifiedKFold if task == "classification" else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    estimator = build_estimator(model, params, task=task, seed=seed, n_classes=n_classes)
    return cross_validate(estimator, X, y, cv=splitter, scoring=metric)["test_score"]


def assert_matches_sklearn(rows: list[dict[str, Any]], trials: list[dict[str, Any]], X: np.ndarray, y: np.ndarray,
                           config: CVConfig) -> None:
    assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in trials]
    for row, trial in zip(rows, trials):
        assert row["status"] == "success", row["error"]
        assert row["error"] is None
        expected = sklearn_scores(trial["model"], trial["params"], X, y, task=config.task, metric=config.metric,
                                  folds=config.folds, seed=config.seed)
        assert len(row["fold_scores"]) == config.folds
        assert_allclose(row["fold_scores"], expected, rtol=1e-12)
        assert row["mean_score"] == pytest.approx(float(np.mean(expected)), rel=1e-12)
        assert row["std_score"] == pytest.approx(float(np.std(expected)), rel=1e-9, abs=1e-15)
        assert row["params"] == trial["params"] and row["model"] == trial["model"]
        assert row["fit_seconds"] > 0


# First in the file on purpose (speed only): each worker pays torch's import once (~5 s here),
# and a worker whose first task imports torch is not restarted by loky's memory-leak check.
# The classifier runs on the pool, the regressor in this process (workers=1).
@pytest.mark.parametrize(("task", "dataset", "metric", "workers"), [
    ("classification", "breast_cancer", "roc_auc", 2),
    ("regression", "diabetes", "r2", 1),
])
def test_mlp_equals_sklearn(task: str, dataset: str, metric: str, workers: int) -> None:
    X, y = data(dataset)
    X, y = X[:150], y[:150]
    config = CVConfig(task=task, metric=metric, folds=3, seed=0)
    trials = as_trials("mlp", [{"epochs": 3, "hidden_units": 16, "n_layers": 1, "device": "cpu"}])
    rows = cross_validate_trials(trials, X, y, config, workers=workers)
    assert_matches_sklearn(rows, trials, X, y, config)
    scores = rows[0]["fold_scores"]
    assert len(set(scores)) == 3  # three different folds, not one score repeated


CLASSIFICATION = {
    "logistic_l1": [{"C": 0.1}, {"C": 1.0}],
    "random_forest": [{"n_estimators": 15, "max_depth": 3}, {"n_estimators": 15, "max_depth": None}],
    "xgboost": [{"n_estimators": 15, "max_depth": 2, "learning_rate": 0.3}, {"n_estimators": 15, "max_depth": 4}],
    "lightgbm": [{"n_estimators": 15, "num_leaves": 7}, {"n_estimators": 15, "learning_rate": 0.2}],
}
REGRESSION = {
    "logistic_l1": [{"alpha": 0.1}, {"alpha": 1.0}],  # Lasso
    "random_forest": CLASSIFICATION["random_forest"],
    "xgboost": CLASSIFICATION["xgboost"],
    "lightgbm": CLASSIFICATION["lightgbm"],
}


@pytest.mark.parametrize("model", list(CLASSIFICATION))
def test_binary_classification_equals_sklearn(model: str) -> None:
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=4, seed=7)
    trials = as_trials(model, CLASSIFICATION[model])
    rows = cross_validate_trials(trials, X, y, config, workers=2)
    assert_matches_sklearn(rows, trials, X, y, config)
    assert all(0.9 < r["mean_score"] <= 1.0 for r in rows)


@pytest.mark.parametrize(("model", "metric"), [
    ("logistic_l1", "neg_mean_squared_error"), ("random_forest", "r2"),
    ("xgboost", "neg_mean_squared_error"), ("lightgbm", "r2"),
])
def test_regression_equals_sklearn(model: str, metric: str) -> None:
    X, y = data("diabetes")
    config = CVConfig(task="regression", metric=metric, folds=3, seed=1)
    trials = as_trials(model, REGRESSION[model])
    rows = cross_validate_trials(trials, X, y, config, workers=2)
    assert_matches_sklearn(rows, trials, X, y, config)
    if metric == "neg_mean_squared_error":
        assert all(r["mean_score"] < 0 for r in rows)  # error metrics are negative, higher is better


def test_multiclass_logistic_l1_is_one_vs_rest_and_equals_sklearn() -> None:
    from sklearn.multiclass import OneVsRestClassifier

    X, y = data("iris")
    assert isinstance(build_estimator("logistic_l1", {}, task="classification", seed=0, n_classes=3), OneVsRestClassifier)
    config = CVConfig(task="classification", metric="accuracy", folds=3, seed=0)
    trials = as_trials("logistic_l1", [{"C": 0.1}, {"C": 1.0}, {"C": 10.0}])
    rows = cross_validate_trials(trials, X, y, config, workers=2)
    assert_matches_sklearn(rows, trials, X, y, config)
    assert rows[1]["fold_scores"] == [0.98, 0.9, 0.98]


def test_a_crashing_trial_fails_alone() -> None:
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=3, seed=0)
    good = as_trials("random_forest", [{"n_estimators": 10, "max_depth": 2}])
    bad = as_trials("random_forest", [{"n_estimators": 10, "max_depth": -5}])
    also_good = as_trials("logistic_l1", [{"C": 1.0}])
    trials = [good[0], bad[0], also_good[0]]
    seen: list[str] = []
    rows = cross_validate_trials(trials, X, y, config, workers=2, on_trial_done=lambda r: seen.append(r["trial_id"]))
    assert sorted(seen) == sorted(t["trial_id"] for t in trials)
    failed = rows[1]
    assert failed["status"] == "failed"
    assert failed["fold_scores"] is None and failed["mean_score"] is None and failed["std_score"] is None
    assert "max_depth" in failed["error"] and "-5" in failed["error"]
    assert "\n" not in failed["error"]
    assert_matches_sklearn([rows[0], rows[2]], [trials[0], trials[2]], X, y, config)


def test_unknown_scorer_fails_the_trial_not_the_call() -> None:
    X, y = data("iris")
    config = CVConfig(task="classification", metric="roc_auc", folds=3, seed=0)  # binary scorer on 3 classes
    rows = cross_validate_trials(as_trials("logistic_l1", [{"C": 1.0}]), X, y, config, workers=1)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"]


def test_duplicate_trial_ids_are_fitted_once_and_each_scored_right() -> None:
    # A bayes round can propose the same params twice. Before the fix the copies' folds raced
    # into one list (fold 0 counted twice, fold 4 lost) in about one call of six; a few calls
    # with several copies make that race show.
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=5, seed=0)
    trial = as_trials("random_forest", [{"n_estimators": 30}])[0]
    other = as_trials("logistic_l1", [{"C": 1.0}])[0]
    expected = sklearn_scores(trial["model"], trial["params"], X, y, task="classification", metric="roc_auc",
                              folds=5, seed=0)
    for _ in range(5):
        trials = [dict(trial) for _ in range(4)] + [other]
        seen: list[str] = []
        rows = cross_validate_trials(trials, X, y, config, workers=2, on_trial_done=lambda r: seen.append(r["trial_id"]))
        assert sorted(seen) == sorted({trial["trial_id"], other["trial_id"]})
        assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in trials]
        for row in rows[:4]:
            assert_allclose(row["fold_scores"], expected, rtol=1e-12)
    assert_matches_sklearn(rows, trials, X, y, config)


def test_no_trials_is_no_rows() -> None:
    X, y = data("iris")
    assert cross_validate_trials([], X, y, CVConfig(task="classification", metric="accuracy", folds=3, seed=0), workers=2) == []


def test_splitter_follows_the_task() -> None:
    assert isinstance(CVConfig(task="classification", metric="accuracy", folds=3, seed=5).splitter(), StratifiedKFold)
    splitter = CVConfig(task="regression", metric="r2", folds=4, seed=5).splitter()
    assert isinstance(splitter, KFold) and not isinstance(splitter, StratifiedKFold)
    assert (splitter.n_splits, splitter.shuffle, splitter.random_state) == (4, True, 5)
