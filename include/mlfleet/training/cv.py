"""Cross-validate trials exactly as scikit-learn's `cross_validate` would, folds in parallel.

Each (trial, fold) pair is one unit of work for a joblib process pool, so a batch of trials
keeps every core busy; a fold that raises marks its trial failed without stopping the rest.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CVConfig:
    task: str
    metric: str
    folds: int
    seed: int

    def splitter(self) -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold

        cls = StratifiedKFold if self.task == "classification" else KFold
        return cls(n_splits=self.folds, shuffle=True, random_state=self.seed)


def _fit_fold(trial: dict[str, Any], fold: int, train: np.ndarray, test: np.ndarray, X: Any, y: Any,
              config: CVConfig, n_classes: int) -> tuple[str, int, float | None, float, str | None]:
    from sklearn.metrics import get_scorer

    from mlfleet.training.zoo import build_estimator

    started = time.perf_counter()
    try:
        estimator = build_estimator(trial["model"], trial["params"], task=config.task, seed=config.seed, n_classes=n_classes)
        estimator.fit(X[train], y[train])
        score = float(get_scorer(config.metric)(estimator, X[test], y[test]))
        if not np.isfinite(score):
            raise ValueError(f"scorer {config.metric} returned {score}")
        return trial["trial_id"], fold, score, time.perf_counter() - started, None
    except Exception as err:  # noqa: BLE001 - a trial's crash is data, recorded on its row
        line = traceback.format_exception_only(type(err), err)[-1].strip()
        return trial["trial_id"], fold, None, time.perf_counter() - started, line


def cross_validate_trials(
    trials: list[dict[str, Any]], X: np.ndarray, y: np.ndarray, config: CVConfig, *, workers: int,
    on_trial_done: Any = None,
) -> list[dict[str, Any]]:
    """Score every trial on every fold; returns one result dict per trial, input order."""
    from joblib import Parallel, delayed

    # Bayes rounds can propose the same params twice (same trial id): fit each id once, or
    # the two copies' folds would mix in `by_trial` below.
    unique = list({t["trial_id"]: t for t in trials}.values())
    splits = list(config.splitter().split(X, y))
    n_classes = len(np.unique(y)) if config.task == "classification" else 0
    jobs = [
        delayed(_fit_fold)(trial, k, train, test, X, y, config, n_classes)
        for trial in unique
        for k, (train, test) in enumerate(splits)
    ]
    by_trial: dict[str, list[tuple[int, float | None, float, str | None]]] = {t["trial_id"]: [] for t in unique}
    results: dict[str, dict[str, Any]] = {}
    runner = Parallel(n_jobs=max(1, min(workers, len(jobs))), return_as="generator_unordered")
    for trial_key, fold, score, seconds, error in runner(jobs):
        by_trial[trial_key].append((fold, score, seconds, error))
        if len(by_trial[trial_key]) == len(splits):
            trial = next(t for t in unique if t["trial_id"] == trial_key)
            results[trial_key] = summarize(trial, sorted(by_trial[trial_key]))
            if on_trial_done:
                on_trial_done(results[trial_key])
    return [results[t["trial_id"]] for t in trials]


def summarize(trial: dict[str, Any], folds: list[tuple[int, float | None, float, str | None]]) -> dict[str, Any]:
    errors = [e for _, _, _, e in folds if e]
    fit_seconds = round(sum(s for _, _, s, _ in folds), 4)
    row = {"trial_id": trial["trial_id"], "model": trial["model"], "params": trial["params"], "fit_seconds": fit_seconds}
    if errors:
        return {**row, "fold_scores": None, "mean_score": None, "std_score": None, "status": "failed", "error": errors[0]}
    scores = [float(s) for _, s, _, _ in folds]
    return {**row, "fold_scores": scores, "mean_score": float(np.mean(scores)), "std_score": float(np.std(scores)),
            "status": "success", "error": None}
