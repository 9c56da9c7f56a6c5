"""The fit history (idempotent, shared by processes), the runtime model fitted on it, and the
prediction error the benchmark reports."""

from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlfleet.config import Settings
from mlfleet.fit_history import FitHistory, FitRecord, RuntimeModel, fold_records, prediction_error
from mlfleet.trials import DEFAULT_FOLD_SECONDS, default_fold_seconds, make_trial

INCLUDE = Path(__file__).resolve().parents[2] / "include"


def record(trial: str, fold: int, *, run_id: str = "run-1", model: str = "random_forest", seconds: float = 1.0,
           params: dict[str, Any] | None = None, n_rows: int = 1000) -> FitRecord:
    return FitRecord(experiment="exp", run_id=run_id, trial_id=trial, fold=fold, model=model,
                     params=params or {"n_estimators": 100}, n_rows=n_rows, n_features=10, workers=2, seconds=seconds)


# --- the store -----------------------------------------------------------------------------------


def test_recording_the_same_sweep_twice_adds_nothing(tmp_path: Path) -> None:
    history = FitHistory(tmp_path / "history.db")
    sweep = [record(f"t{i}", fold) for i in range(4) for fold in range(3)]
    assert history.record(sweep) == 12
    assert history.record(sweep) == 0
    assert history.record(list(reversed(sweep[:5]))) == 0
    assert history.count() == 12
    # the same trials in another sweep run are new fits
    assert history.record([record("t0", 0, run_id="run-2")]) == 1
    assert history.count() == 13
    newest = history.records(limit=1)[0]
    assert (newest.run_id, newest.params) == ("run-2", {"n_estimators": 100})
    assert {r.model for r in history.records(model="random_forest")} == {"random_forest"}
    with sqlite3.connect(history.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_absent_store_reads_empty_and_is_not_created(tmp_path: Path) -> None:
    history = FitHistory(tmp_path / "nothing" / "history.db")
    assert history.count() == 0 and history.records() == [] and history.models() == []
    assert RuntimeModel.load(history.path).fitted_models == []
    assert history.record([]) == 0
    assert not history.path.exists()


WRITER = textwrap.dedent("""
    import sys
    from mlfleet.fit_history import FitHistory, FitRecord

    path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    history = FitHistory(path)
    for i in range(first, last):  # one transaction per trial, so the two writers interleave
        history.record([FitRecord("exp", "run-1", f"t{i}", fold, "xgboost", {"max_depth": i % 7 + 1},
                                  1000, 10, 2, 0.1 * (fold + 1)) for fold in range(3)])
""")


def test_two_processes_record_at_once(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(INCLUDE), os.environ.get("PYTHONPATH")]))}
    # overlapping trial ranges: both processes insert t100..t149
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), first, last], env=env,
                                stderr=subprocess.PIPE, text=True)
               for first, last in (("0", "150"), ("100", "250"))]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    history = FitHistory(path)
    assert history.count() == 250 * 3
    keys = [(r.trial_id, r.fold) for r in history.records()]
    assert len(keys) == len(set(keys))


def test_fold_records_use_fold_seconds_when_present_else_spread_fit_seconds() -> None:
    rows = [
        {"trial_id": "a", "model": "xgboost", "params": {"max_depth": 3}, "fit_seconds": 6.0,
         "fold_seconds": [1.0, 2.0, 3.0], "status": "success"},
        {"trial_id": "b", "model": "lightgbm", "params": {}, "fit_seconds": 6.0, "status": "success"},
        {"trial_id": "c", "model": "xgboost", "params": {}, "fit_seconds": 1.0, "status": "failed"},
        # a pruned trial: the folds that did not run are None
        {"trial_id": "d", "model": "xgboost", "params": {}, "fit_seconds": 0.5, "fold_seconds": [None, 0.5, None],
         "pruned": True, "status": "success"},
    ]
    records = fold_records(rows, experiment="exp", run_id="run-1", folds=3, n_rows=500, n_features=7,
                           workers={"a": 4}, default_workers=1)
    assert [(r.trial_id, r.fold, r.seconds, r.workers) for r in records] == [
        ("a", 0, 1.0, 4), ("a", 1, 2.0, 4), ("a", 2, 3.0, 4), ("b", 0, 2.0, 1), ("b", 1, 2.0, 1), ("b", 2, 2.0, 1),
        ("d", 1, 0.5, 1)]
    assert {(r.n_rows, r.n_features, r.experiment, r.run_id) for r in records} == {(500, 7, "exp", "run-1")}


def test_a_sweep_records_its_folds_once(tmp_path: Path) -> None:
    from mlfleet.sweep import SweepContext
    from mlfleet.sweep.propose import record_history

    spec = {"name": "exp", "task": "classification", "target": "target", "metric": "roc_auc",
            "dataset": {"builtin": "breast_cancer"}, "cv": {"folds": 2, "seed": 0},
            "models": [{"type": "logistic_l1", "params": {"C": [1.0]}}]}
    context = SweepContext(experiment="exp", run_id="run-1", results_dir=str(tmp_path / "results"), spec=spec,
                           backend="local", features=["a", "b", "c"], n_rows=400, data_path="unused",
                           data_sha256="0" * 64, study="exp.run-1", rounds=1, n_trials=1)
    trial = make_trial("logistic_l1", {"C": 1.0}, 0)
    (context.results_path / "rounds").mkdir(parents=True)
    (context.results_path / "rounds" / "000.json").write_text(json.dumps([{"batch_id": "r0-x", "trials": [trial.to_dict()]}]))
    results = context.results_path / "batches" / "r0-x" / "model" / "results.json"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps([{"trial_id": trial.trial_id, "model": trial.model, "params": trial.params,
                                    "fit_seconds": 0.5, "fold_seconds": [0.2, 0.3], "status": "success"}]))
    settings = Settings(home=tmp_path / "home", local_workers=3)
    assert record_history(context, settings=settings) == 2
    assert record_history(context, settings=settings) == 0
    stored = FitHistory(settings.fit_history_path).records()
    assert sorted((r.fold, r.seconds, r.n_rows, r.n_features, r.workers) for r in stored) == [
        (0, 0.2, 400, 3, 3), (1, 0.3, 400, 3, 3)]


# --- the runtime model ---------------------------------------------------------------------------


def synthetic_seconds(n_rows: int, n_estimators: int, max_depth: int, rng: random.Random) -> float:
    """One fold of a forest: linear in rows and trees, a little in depth, with 20% noise."""
    return 0.8 * (n_rows / 10_000) * (n_estimators / 100) * (max_depth / 8) ** 0.5 * math.exp(rng.gauss(0, 0.2))


def forest_history(n_trials: int, seed: int = 0) -> list[FitRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(n_trials):
        n_rows, n_estimators, max_depth = rng.choice([2_000, 10_000, 50_000, 200_000]), rng.randint(20, 800), rng.randint(2, 16)
        params = {"n_estimators": n_estimators, "max_depth": max_depth, "criterion": rng.choice(["gini", "entropy"])}
        records += [record(f"t{i}", fold, params=params, n_rows=n_rows, seconds=synthetic_seconds(n_rows, n_estimators, max_depth, rng))
                    for fold in range(3)]
    return records


def test_the_regression_beats_the_defaults_where_seconds_scale_with_rows_and_trees() -> None:
    model = RuntimeModel.fit(forest_history(150))
    assert model.fitted_models == ["random_forest"]
    rng = random.Random(1)
    predicted, default, actual = {}, {}, {}
    for i in range(200):
        n_rows, n_estimators, max_depth = rng.randint(2_000, 200_000), rng.randint(20, 800), rng.randint(2, 16)
        trial = make_trial("random_forest", {"n_estimators": n_estimators, "max_depth": max_depth, "i": i}, 0)
        folds = 5
        actual[trial.trial_id] = folds * 0.8 * (n_rows / 10_000) * (n_estimators / 100) * (max_depth / 8) ** 0.5
        predicted[trial.trial_id] = folds * model.fold_seconds(trial, n_rows=n_rows, n_features=10, workers=2)
        default[trial.trial_id] = folds * default_fold_seconds(trial)
    learned, fixed = prediction_error(predicted, actual), prediction_error(default, actual)
    assert learned["median_abs_error_seconds"] < fixed["median_abs_error_seconds"] / 3
    assert learned["share_within_tolerance"] > fixed["share_within_tolerance"]
    ratios = sorted(predicted[k] / actual[k] for k in actual)
    assert 0.8 < ratios[len(ratios) // 2] < 1.25  # the median trial is predicted within 25%


def test_rows_and_trees_move_the_prediction_the_right_way() -> None:
    model = RuntimeModel.fit(forest_history(150))
    trial = make_trial("random_forest", {"n_estimators": 200, "max_depth": 8}, 0)
    small = model.fold_seconds(trial, n_rows=5_000, n_features=10, workers=2)
    large = model.fold_seconds(trial, n_rows=100_000, n_features=10, workers=2)
    assert 10 < large / small < 40  # 20x the rows, ~20x the time
    more_trees = make_trial("random_forest", {"n_estimators": 800, "max_depth": 8}, 0)
    assert model.fold_seconds(more_trees, n_rows=5_000, n_features=10, workers=2) > 2.5 * small
    # an unknown training-set shape is taken as the history's mean, not refused
    assert small < model.fold_seconds(trial) < large


def test_too_little_history_falls_back_to_the_defaults() -> None:
    few = [record("t0", fold, seconds=100.0) for fold in range(4)]
    model = RuntimeModel.fit(few)
    assert model.fitted_models == []
    trial = make_trial("random_forest", {"n_estimators": 300}, 0)
    assert model.fold_seconds(trial, n_rows=1000) == pytest.approx(DEFAULT_FOLD_SECONDS["random_forest"] * 3)
    enough = RuntimeModel.fit([*few, record("t1", 0, seconds=100.0)])
    assert enough.fitted_models == ["random_forest"]
    assert enough.fold_seconds(trial, n_rows=1000) == pytest.approx(100.0)
    # a model type with no history of its own keeps its default
    xgb = make_trial("xgboost", {"n_estimators": 50}, 0)
    assert enough.fold_seconds(xgb) == pytest.approx(DEFAULT_FOLD_SECONDS["xgboost"] * 0.5)


def test_the_regression_is_the_weighted_ridge_on_standardized_inputs() -> None:
    """The fitted model predicts what the closed-form weighted ridge (normal equations, RIDGE_ALPHA)
    predicts on the same inputs, to 1e-9 relative: repeats of one input weigh as many rows."""
    import numpy as np

    from mlfleet.fit_history import RIDGE_ALPHA

    rng = random.Random(3)
    records, rows = [], []
    for i in range(40):
        n_rows, n_features, workers = rng.choice([1_000, 8_000, 50_000]), rng.choice([5, 30]), rng.choice([1, 2, 4])
        folds = rng.randint(1, 4)  # one to four folds of the same input
        seconds = [0.5 * (n_rows / 1_000) ** 0.9 / workers * math.exp(rng.gauss(0, 0.3)) for _ in range(folds)]
        records += [FitRecord("exp", "run-1", f"t{i}", fold, "random_forest", {"n_estimators": 100}, n_rows, n_features,
                              workers, s) for fold, s in enumerate(seconds)]
        rows += [(math.log(n_rows), math.log(n_features), math.log(workers), math.log(s)) for s in seconds]
    inputs = {}  # distinct input -> its folds' log seconds
    for *x, y in rows:
        inputs.setdefault(tuple(x), []).append(y)
    X = np.array(list(inputs))
    w = np.array([len(v) for v in inputs.values()], dtype=float)
    y = np.array([sum(v) / len(v) for v in inputs.values()])
    mean = (X * w[:, None]).sum(axis=0) / w.sum()
    scale = np.sqrt((((X - mean) ** 2) * w[:, None]).sum(axis=0) / w.sum())
    Z = (X - mean) / scale
    intercept = (y * w).sum() / w.sum()
    coef = np.linalg.solve(Z.T @ (Z * w[:, None]) + RIDGE_ALPHA * np.eye(3), Z.T @ ((y - intercept) * w))

    model = RuntimeModel.fit(records)
    trial = make_trial("random_forest", {"n_estimators": 100}, 0)
    for n_rows, n_features, workers in [(1_000, 5, 1), (20_000, 30, 2), (50_000, 5, 4), (3_000, 12, 3)]:
        z = (np.log([n_rows, n_features, workers]) - mean) / scale
        expected = math.exp(intercept + float(z @ coef))
        got = model.fold_seconds(trial, n_rows=n_rows, n_features=n_features, workers=workers)
        assert got == pytest.approx(expected, rel=1e-9)


def test_loading_fits_the_newest_sample_of_each_model(tmp_path: Path) -> None:
    history = FitHistory(tmp_path / "history.db")
    old = [record(f"old{i}", 0, seconds=1.0) for i in range(20)]
    new = [record(f"new{i}", 0, seconds=9.0) for i in range(20)]
    history.record(old)
    history.record(new)
    trial = make_trial("random_forest", {"n_estimators": 100}, 0)
    assert RuntimeModel.load(history.path, sample=20).fold_seconds(trial) == pytest.approx(9.0)
    assert RuntimeModel.load(history.path, sample=40).fold_seconds(trial) == pytest.approx(3.0)  # geometric mean
    assert RuntimeModel.load(history.path, models=["xgboost"]).fitted_models == []
    stored = RuntimeModel.load(history.path, sample=1000).fold_seconds(trial, n_rows=1000)
    assert stored == pytest.approx(RuntimeModel.fit(old + new).fold_seconds(trial, n_rows=1000))


def test_the_predictor_plans_batches_from_history() -> None:
    from mlfleet.trials import plan_batches

    model = RuntimeModel.fit(forest_history(150))
    trials = [make_trial("random_forest", {"n_estimators": n, "max_depth": 8}, 0) for n in (50, 400)]
    [batch] = plan_batches(trials, folds=5, cores_per_batch=4, max_batches=1, target_seconds=3600,
                           predictor=model.predictor(n_rows=50_000, n_features=10, workers=2))
    assert all(t.predicted_seconds is not None for t in batch.trials)
    seconds = {t.params["n_estimators"]: float(t.predicted_seconds or 0) for t in batch.trials}
    assert seconds[400] > 5 * seconds[50]
    assert batch.predicted_seconds == pytest.approx(sum(seconds.values()), abs=0.01)


# --- prediction error ----------------------------------------------------------------------------


def test_prediction_error_on_known_numbers() -> None:
    report = prediction_error([10.0, 50.0, 100.0, 200.0], [12.0, 100.0, 95.0, 260.0])
    assert report == {"n": 4, "median_abs_error_seconds": 27.5, "share_within_tolerance": 0.5, "tolerance_seconds": 30.0}
    by_id = prediction_error({"a": 10.0, "b": 80.0, "only-predicted": 1.0}, {"a": 40.0, "b": 20.0, "only-run": 5.0})
    assert (by_id["n"], by_id["median_abs_error_seconds"], by_id["share_within_tolerance"]) == (2, 45.0, 0.5)
    assert prediction_error([1.0], [100.0], tolerance_seconds=120)["share_within_tolerance"] == 1.0
    assert prediction_error([], [])["n"] == 0


def test_prediction_error_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 actual"):
        prediction_error([1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match="both as"):
        prediction_error({"a": 1.0}, [1.0])
