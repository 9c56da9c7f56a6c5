"""The key contract: a trial's fold scores are exactly scikit-learn's `cross_validate` test scores."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn import datasets
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate

from mlfleet.training import cv
from mlfleet.training.cv import CVConfig, Pruning, cross_validate_trials, longest_first, summarize
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


# --- per-fold seconds ----------------------------------------------------------------------------


@pytest.mark.parametrize("prune", [None, Pruning(min_folds=2, p_value=0.3)])
def test_every_row_has_fold_seconds_summing_to_fit_seconds(prune: Pruning | None) -> None:
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=3, seed=0)
    trials = [*as_trials("logistic_l1", [{"C": 0.1}]), *as_trials("random_forest", [{"n_estimators": 5, "max_depth": -5}])]
    rows = cross_validate_trials(trials, X, y, config, workers=2, prune=prune)
    assert [r["status"] for r in rows] == ["success", "failed"]
    for row in rows:
        assert len(row["fold_seconds"]) == config.folds
        ran = [s for s in row["fold_seconds"] if s is not None]
        assert all(isinstance(s, float) and s >= 0 for s in ran)
        assert row["fit_seconds"] == round(sum(ran), 4)
        assert row["pruned"] is False
    assert None not in rows[0]["fold_seconds"]
    if prune is None:  # without pruning every fold runs, even a failing trial's
        assert None not in rows[1]["fold_seconds"]
    else:  # in waves a failed trial runs no more folds: its row would be the same
        assert rows[1]["fold_seconds"][1:] == [None, None]
        assert "max_depth" in rows[1]["error"]


def test_summarize_marks_folds_not_run() -> None:
    trial = as_trials("logistic_l1", [{"C": 1.0}])[0]
    row = summarize(trial, [(0, 0.9, 0.25, None), (1, 0.7, 0.5, None)], n_folds=4, pruned=True)
    assert row["fold_seconds"] == [0.25, 0.5, None, None] and row["fit_seconds"] == 0.75
    assert row["fold_scores"] == [0.9, 0.7] and row["mean_score"] == pytest.approx(0.8)
    assert row["pruned"] is True and row["status"] == "success"


# --- longest first -------------------------------------------------------------------------------


def test_trials_run_longest_first_by_predicted_seconds() -> None:
    # One worker runs the jobs in submission order, so the order trials finish in is that order.
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=2, seed=0)
    trials = as_trials("logistic_l1", [{"C": c} for c in (0.1, 1.0, 10.0, 100.0)])
    for trial, seconds in zip(trials, (5.0, 40.0, 5.0, 12.0)):
        trial["predicted_seconds"] = seconds
    seen: list[str] = []
    rows = cross_validate_trials(trials, X, y, config, workers=1, on_trial_done=lambda r: seen.append(r["trial_id"]))
    assert seen == [trials[i]["trial_id"] for i in (1, 3, 0, 2)]  # 40, 12, then the two 5s in input order
    assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in trials]  # rows stay in input order
    assert_matches_sklearn(rows, trials, X, y, config)


def test_a_batch_predicted_shorter_than_a_pool_start_runs_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=2, seed=0)
    trials = as_trials("logistic_l1", [{"C": c} for c in (0.1, 1.0, 10.0)])
    worker_pids: set[int] = set()
    real_fit = cv._fit_fold

    def fit_noting_the_process(*args: Any) -> Any:
        import os

        worker_pids.add(os.getpid())
        return real_fit(*args)

    monkeypatch.setattr(cv, "_fit_fold", fit_noting_the_process)  # seen only when fitted here
    for trial in trials:
        trial["predicted_seconds"] = 0.5  # 1.5 core-s in all: below what starting 2 workers costs
    rows = cross_validate_trials(trials, X, y, config, workers=2)
    import os

    assert worker_pids == {os.getpid()}
    assert_matches_sklearn(rows, trials, X, y, config)
    # Long or unpredicted work gets the pool: W workers pay off past POOL_START * W / (W - 1).
    assert cv.pool_size(trials, workers=2, pairs=6) == 1
    long = [{**t, "predicted_seconds": 2 * cv.POOL_START_SECONDS} for t in trials]
    assert cv.pool_size(long, workers=2, pairs=6) == 2
    assert cv.pool_size([*trials[:2], {**trials[2], "predicted_seconds": None}], workers=2, pairs=6) == 2
    assert cv.pool_size(long, workers=8, pairs=2) == 2  # never more workers than (trial, fold) pairs


def test_without_predictions_trials_run_in_input_order() -> None:
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=2, seed=0)
    trials = as_trials("logistic_l1", [{"C": c} for c in (100.0, 0.1, 10.0)])
    seen: list[str] = []
    cross_validate_trials(trials, X, y, config, workers=1, on_trial_done=lambda r: seen.append(r["trial_id"]))
    assert seen == [t["trial_id"] for t in trials]


def test_longest_first_orders_by_seconds_per_fold() -> None:
    def trials(*seconds: Any) -> list[dict[str, Any]]:
        return [{"trial_id": f"t{i}", **({} if s is None else {"predicted_seconds": s})} for i, s in enumerate(seconds)]

    def ids(batch: list[dict[str, Any]]) -> list[str]:
        return [t["trial_id"] for t in longest_first(batch, folds=5)]

    assert ids(trials(None, None, None)) == ["t0", "t1", "t2"]
    assert ids(trials(1, 3, 2, 3)) == ["t1", "t3", "t2", "t0"]
    # a trial without a (usable) prediction counts as the batch's average
    assert ids(trials(10, None, 2)) == ["t0", "t1", "t2"]
    assert ids(trials(10, "soon", float("nan"), -1, True, 2)) == ["t0", "t1", "t2", "t3", "t4", "t5"]


# --- pruning -------------------------------------------------------------------------------------

WEAK, STRONG = {"C": 1e-4}, {"C": 1.0}  # logistic_l1 on breast_cancer, folds=5, seed=0: weaker on every fold


@pytest.mark.parametrize(("min_folds", "p_value", "folds_run"), [
    (2, 0.3, 2),  # both folds worse: p = 1/4 < 0.3
    (3, 0.3, 3),  # not before min_folds
    (2, 0.1, 4),  # p = 1/8 after 3 folds is not < 0.1; 1/16 after 4 is
])
def test_a_clearly_worse_trial_stops_after_min_folds(min_folds: int, p_value: float, folds_run: int) -> None:
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=5, seed=0)
    weak, strong = as_trials("logistic_l1", [WEAK, STRONG])
    rows = cross_validate_trials([weak, strong], X, y, config, workers=2, prune=Pruning(min_folds=min_folds, p_value=p_value))
    pruned, best = rows
    assert best["pruned"] is False
    assert_matches_sklearn([best], [strong], X, y, config)  # the best trial ran every fold, unchanged
    assert pruned["pruned"] is True and pruned["status"] == "success" and pruned["error"] is None
    expected = sklearn_scores("logistic_l1", WEAK, X, y, task="classification", metric="roc_auc", folds=5, seed=0)
    assert_allclose(pruned["fold_scores"], expected[:folds_run], rtol=1e-12)  # the folds it ran, as sklearn scores them
    assert pruned["mean_score"] == pytest.approx(float(np.mean(expected[:folds_run])), rel=1e-12)
    assert pruned["std_score"] == pytest.approx(float(np.std(expected[:folds_run])), rel=1e-9)
    assert [s is None for s in pruned["fold_seconds"]] == [False] * folds_run + [True] * (5 - folds_run)
    assert pruned["mean_score"] < best["mean_score"]


def test_pruning_never_stops_the_best_and_does_not_depend_on_workers() -> None:
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=5, seed=0)
    trials = as_trials("logistic_l1", [WEAK, {"C": 0.01}, STRONG])
    prune = Pruning(min_folds=2, p_value=0.3)

    def without_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**{k: v for k, v in r.items() if k not in ("fit_seconds", "fold_seconds")},
                 "ran": [s is not None for s in r["fold_seconds"]]} for r in rows]

    rows = cross_validate_trials(trials, X, y, config, workers=1, prune=prune)
    assert [r["pruned"] for r in rows] == [True, True, False]
    assert max(rows, key=lambda r: r["mean_score"]) is rows[2]
    assert_matches_sklearn(rows[2:], trials[2:], X, y, config)
    assert without_seconds(cross_validate_trials(trials, X, y, config, workers=2, prune=prune)) == without_seconds(rows)


def test_a_lone_trial_is_never_pruned() -> None:
    X, y = data("breast_cancer")
    config = CVConfig(task="classification", metric="roc_auc", folds=3, seed=0)
    trials = as_trials("logistic_l1", [WEAK])
    rows = cross_validate_trials(trials, X, y, config, workers=2, prune=Pruning(min_folds=2, p_value=0.3))
    assert rows[0]["pruned"] is False
    assert_matches_sklearn(rows, trials, X, y, config)


def fake_folds(monkeypatch: pytest.MonkeyPatch, scores: dict[str, list[float | None]]) -> list[tuple[str, int]]:
    """Replace the fit with given per-fold scores (None: the fold raises); returns the fits made, in order."""
    fits: list[tuple[str, int]] = []

    def fit(trial: dict[str, Any], fold: int, *_: Any) -> tuple[str, int, float | None, float, str | None]:
        fits.append((trial["trial_id"], fold))
        score = scores[trial["trial_id"]][fold]
        return trial["trial_id"], fold, score, 0.01, None if score is not None else "ValueError: boom"

    monkeypatch.setattr(cv, "_fit_fold", fit)
    return fits


def fake_trials(*names: str) -> list[dict[str, Any]]:
    return [{"trial_id": name, "model": "logistic_l1", "params": {}} for name in names]


def test_folds_run_in_waves_and_pruned_folds_are_never_fitted(monkeypatch: pytest.MonkeyPatch) -> None:
    fits = fake_folds(monkeypatch, {"good": [0.9, 0.92, 0.91, 0.93], "bad": [0.5, 0.55, 0.52, 0.51],
                                    "close": [0.89, 0.93, 0.9, 0.94]})
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=4, seed=0)
    rows = cross_validate_trials(fake_trials("good", "bad", "close"), X, y, config, workers=1,
                                 prune=Pruning(min_folds=2, p_value=0.3))
    assert fits[:6] == [("good", 0), ("bad", 0), ("close", 0), ("good", 1), ("bad", 1), ("close", 1)]
    assert ("bad", 2) not in fits and len(fits) == 6 + 2 + 2
    bad = rows[1]
    assert bad["pruned"] is True and bad["fold_scores"] == [0.5, 0.55] and bad["fold_seconds"] == [0.01, 0.01, None, None]
    assert [r["pruned"] for r in rows] == [False, True, False]  # `close` is not clearly worse


def test_idle_workers_fit_later_folds_ahead_without_changing_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # With 4 workers and 2 trials the waves run folds ahead; `bad` stops after 2 folds all the same,
    # and the folds fitted ahead of time for it are not on its row.
    fake_folds(monkeypatch, {"good": [0.9, 0.92, 0.91, 0.93], "bad": [0.5, 0.55, 0.52, 0.51]})
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=4, seed=0)
    prune = Pruning(min_folds=2, p_value=0.3)
    alone = cross_validate_trials(fake_trials("good", "bad"), X, y, config, workers=1, prune=prune)
    wide = cross_validate_trials(fake_trials("good", "bad"), X, y, config, workers=4, prune=prune)
    assert wide == alone
    assert wide[1]["pruned"] is True and wide[1]["fold_scores"] == [0.5, 0.55]


def test_a_pruned_trial_above_the_final_best_runs_its_remaining_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    # `leader` beats `steady` on folds 0-1 (so `steady` stops), then collapses: `steady`'s mean over
    # its two folds would outrank every complete trial, so it is finished instead.
    fits = fake_folds(monkeypatch, {"leader": [0.95, 0.96, 0.2, 0.2], "steady": [0.9, 0.91, 0.9, 0.9],
                                    "weak": [0.5, 0.52, 0.5, 0.5]})
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=4, seed=0)
    rows = cross_validate_trials(fake_trials("leader", "steady", "weak"), X, y, config, workers=1,
                                 prune=Pruning(min_folds=2, p_value=0.3))
    leader, steady, weak = rows
    assert steady["pruned"] is False and steady["fold_scores"] == [0.9, 0.91, 0.9, 0.9]
    assert weak["pruned"] is True and weak["fold_scores"] == [0.5, 0.52]  # below the best complete: stays stopped
    assert leader["pruned"] is False and len(leader["fold_scores"]) == 4
    assert max(rows, key=lambda r: r["mean_score"]) is steady
    assert ("weak", 2) not in fits


def test_when_the_leader_fails_every_pruned_trial_is_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_folds(monkeypatch, {"leader": [0.95, 0.96, None], "other": [0.6, 0.62, 0.61]})
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=3, seed=0)
    seen: list[str] = []
    rows = cross_validate_trials(fake_trials("leader", "other"), X, y, config, workers=1,
                                 prune=Pruning(min_folds=2, p_value=0.3), on_trial_done=lambda r: seen.append(r["trial_id"]))
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "ValueError: boom"
    assert rows[1]["pruned"] is False and rows[1]["fold_scores"] == [0.6, 0.62, 0.61]
    assert sorted(seen) == ["leader", "other"]  # each trial reported once


def test_prune_settings_travel_as_hyperparameters(tmp_path: Any) -> None:
    from mlfleet.training.entrypoint import hyperparameters_of, read_job, stage_job

    job = {"task": "classification", "target": "target", "metric": "roc_auc", "cv": {"folds": 5, "seed": 0},
           "features": ["a"], "trials": []}
    assert set(hyperparameters_of(job)) == {"task", "target", "metric", "cv_folds", "cv_seed"}  # old jobs: unchanged
    stage_job(tmp_path / "old", job)
    assert read_job(tmp_path / "old")["prune"] is None
    pruned = {**job, "prune": {"min_folds": 3, "p_value": 0.2}}
    hyperparameters = hyperparameters_of(pruned)
    assert hyperparameters["prune_min_folds"] == "3" and hyperparameters["prune_p_value"] == "0.2"
    stage_job(tmp_path / "new", pruned)
    assert read_job(tmp_path / "new")["prune"] == {"min_folds": 3, "p_value": 0.2}


def test_a_fold_worker_that_dies_fails_the_call_instead_of_hanging_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    real_fit = cv._fit_fold

    def fit_or_die(trial: dict[str, Any], fold: int, *args: Any) -> Any:
        if trial["trial_id"] == "dies" and args[-1] != os.getpid():  # in a pool worker (the owner is another process)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_fit(trial, fold, *args)

    monkeypatch.setattr(cv, "_fit_fold", fit_or_die)  # sent to the workers by value
    X, y = data("iris")
    config = CVConfig(task="classification", metric="accuracy", folds=2, seed=0)
    trials = [*as_trials("logistic_l1", [{"C": 1.0}]), {"trial_id": "dies", "model": "logistic_l1", "params": {"C": 0.5}}]
    with pytest.raises(Exception, match="terminated"):
        cross_validate_trials(trials, X, y, config, workers=2)
