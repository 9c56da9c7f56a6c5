"""Benchmark 3: fold-level parallelism inside one batch (`cross_validate_trials`, workers=1 vs 2)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from mlfleet.training.cv import CVConfig, cross_validate_trials
from mlfleet.trials import make_trial

MAX_DEPTHS = [2, 3, 4, 5, 6, 8, 12, None]
N_ESTIMATORS = 50
FOLDS = 5
REPEATS = 5


def _timed(trials: list[dict[str, Any]], X: Any, y: Any, config: CVConfig, workers: int) -> float:
    started = time.perf_counter()
    rows = cross_validate_trials(trials, X, y, config, workers=workers)
    seconds = time.perf_counter() - started
    assert all(r["status"] == "success" for r in rows), [r["error"] for r in rows if r["error"]]
    return seconds


def run() -> dict[str, Any]:
    """workers=1 and workers=2 (warm pool) over interleaved repeats (median and best), plus the first, cold-pool call.

    A batch's training process is fresh, so its first call pays the process pool's start-up; later
    calls in one process reuse the pool.
    """
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    config = CVConfig(task="classification", metric="roc_auc", folds=FOLDS, seed=0)
    trials = [make_trial("random_forest", {"n_estimators": N_ESTIMATORS, "max_depth": d}, 0).to_dict()
              for d in MAX_DEPTHS]
    _timed(trials[:1], X, y, config, workers=1)  # imports in this process, outside the timings
    cold = _timed(trials, X, y, config, workers=2)
    serial, parallel = [], []
    for _ in range(REPEATS):
        serial.append(_timed(trials, X, y, config, workers=1))
        parallel.append(_timed(trials, X, y, config, workers=2))
    return {"trials": len(trials), "fits": len(trials) * FOLDS,
            "serial_s": statistics.median(serial), "serial_min_s": min(serial),
            "parallel_s": statistics.median(parallel), "parallel_min_s": min(parallel), "parallel_cold_s": cold}
