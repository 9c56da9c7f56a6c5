"""Benchmark 2: how fast `plan_batches` packs large synthetic sweeps, and how even the packing is."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from mlfleet.trials import Trial, make_trial, plan_batches

SIZES = (1_000, 10_000)
REPEATS = 5
FOLDS = 5
CORES_PER_BATCH = 2
MAX_BATCHES = 64
TARGET_SECONDS = 60.0


def synthetic_trials(n: int, *, seed: int = 0) -> list[Trial]:
    """`n` distinct trials across all five model types, tree ensembles with varied n_estimators."""
    rng = random.Random(seed)
    trials: list[Trial] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            trial = make_trial("xgboost", {"n_estimators": rng.randint(50, 500), "max_depth": rng.randint(2, 10),
                                           "learning_rate": rng.uniform(0.01, 0.3), "i": i}, 0)
        elif kind == 1:
            trial = make_trial("lightgbm", {"n_estimators": rng.randint(50, 500), "num_leaves": rng.randint(8, 128),
                                            "i": i}, 1)
        elif kind == 2:
            trial = make_trial("random_forest", {"n_estimators": rng.randint(50, 500), "max_depth": rng.randint(2, 20),
                                                 "i": i}, 2)
        elif kind == 3:
            trial = make_trial("logistic_l1", {"C": 10 ** rng.uniform(-3, 2), "i": i}, 3)
        else:
            trial = make_trial("mlp", {"hidden": rng.choice([32, 64, 128]), "lr": 10 ** rng.uniform(-4, -2), "i": i}, 4)
        trials.append(trial)
    return trials


def run() -> list[dict[str, Any]]:
    rows = []
    for n in SIZES:
        trials = synthetic_trials(n)
        times, batches = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            batches = plan_batches(trials, folds=FOLDS, cores_per_batch=CORES_PER_BATCH, max_batches=MAX_BATCHES,
                                   target_seconds=TARGET_SECONDS)
            times.append(time.perf_counter() - started)
        predicted = [b.predicted_seconds for b in batches]
        assert sum(len(b.trials) for b in batches) == n
        rows.append({"trials": n, "median_ms": statistics.median(times) * 1000, "batches": len(batches),
                     "max_s": max(predicted), "min_s": min(predicted)})
    return rows
