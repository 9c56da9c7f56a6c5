"""Benchmark 1: one batch (= one task instance, one training process) per trial vs the planned batches.

Both modes go through the real sweep functions and the real local backend (a training subprocess
per batch), so the difference is the per-batch start-up that batching exists to amortise.
"""

from __future__ import annotations

import time
from typing import Any

from mlfleet.config import Settings
from mlfleet.sweep import SweepContext, collect_rows, prepare, propose, run_batch
from mlfleet.trials import Batch, expand, predict_trial_seconds

C_VALUES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
TOL_VALUES = [1e-4, 1e-3]
FOLDS = 3


def bench_spec(name: str, *, c_values: list[float] = C_VALUES, tol_values: list[float] = TOL_VALUES) -> dict[str, Any]:
    """24 short trials: logistic_l1 on breast_cancer, 12 C values x 2 tol values, 3 folds."""
    return {
        "name": name,
        "task": "classification",
        "target": "target",
        "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"},
        "cv": {"folds": FOLDS, "seed": 0},
        "search": {"strategy": "grid"},
        "models": [{"type": "logistic_l1", "params": {"C": c_values, "tol": tol_values}}],
        "budget": {"max_parallel": 8, "timeout_minutes": 10},
    }


def one_batch_per_trial(context: SweepContext) -> list[dict[str, Any]]:
    """What a task-per-trial design would run: every trial alone in its own batch."""
    spec = context.experiment_spec
    batches = []
    for index, trial in enumerate(expand(spec)):
        batch = Batch(batch_id=f"r0-trial{index:03d}", trials=[trial],
                      predicted_seconds=predict_trial_seconds(trial, spec.cv.folds))
        batches.append({**batch.to_dict(), "round": 0})
    return batches


def _run(context: SweepContext, make_batches: Any, settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    batches = make_batches()
    for batch in batches:
        run_batch(context, batch, settings=settings)
    wall = time.perf_counter() - started
    rows = collect_rows(context)
    return {"batches": len(batches), "trials": len(rows), "failed": sum(r["status"] != "success" for r in rows),
            "wall_s": wall, "scores": {r["trial_id"]: r["mean_score"] for r in rows}}


def run(*, settings: Settings) -> dict[str, Any]:
    """Time both modes on fresh experiments (distinct names and run ids, so nothing is reused).

    A one-trial warm-up sweep runs first, untimed, so neither mode pays for filling the bytecode cache.
    """
    warmup = prepare(bench_spec("bench-warmup", c_values=[1.0], tol_values=[1e-4]), settings=settings, run_id="warmup")
    for batch in propose(warmup, round_index=0, settings=settings):
        run_batch(warmup, batch, settings=settings)
    started = time.perf_counter()
    per_trial_ctx = prepare(bench_spec("bench-one-batch-per-trial"), settings=settings, run_id="bench-per-trial")
    planned_ctx = prepare(bench_spec("bench-planned-batches"), settings=settings, run_id="bench-planned")
    prepare_s = (time.perf_counter() - started) / 2
    per_trial = _run(per_trial_ctx, lambda: one_batch_per_trial(per_trial_ctx), settings)
    planned = _run(planned_ctx, lambda: propose(planned_ctx, round_index=0, settings=settings), settings)
    same = per_trial["scores"] == planned["scores"]
    return {"per_trial": per_trial, "planned": planned, "prepare_s": prepare_s, "identical_scores": same,
            "workers": settings.workers, "target_seconds": settings.batch_target_seconds}
