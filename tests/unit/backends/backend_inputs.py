"""A sweep context, batches and jobs as the dispatcher hands them to the request builders."""

from __future__ import annotations

from typing import Any

from mlfleet.config import Settings
from mlfleet.spec import parse_spec
from mlfleet.sweep import SweepContext, plan_round
from mlfleet.trials import expand

SPEC: dict[str, Any] = parse_spec({
    "name": "churn-baseline",
    "task": "classification",
    "target": "churned",
    "metric": "roc_auc",
    "dataset": {"feature_service": "churn_v1"},
    "models": [
        {"type": "xgboost", "params": {"max_depth": [3, 6], "learning_rate": [0.1]}},
        {"type": "mlp", "params": {"hidden_layer_sizes": [[64]]}, "resources": {"cpu": 4, "memory_gb": 16, "gpu": 1}},
    ],
    "resources": {"cpu": 2, "memory_gb": 4, "gpu": 0},
    "budget": {"max_parallel": 4, "timeout_minutes": 30},
}).model_dump(mode="json", exclude_none=True)

DATA_URI = "s3://bucket/prefix/datasets/0f3c9a7e5b2d4c1a8e6f0b9d7c5a3e1f2b4d6c8a0e9f7b5d3c1a2e4f6b8d0c9a/train.parquet"
TRIAL = {"trial_id": "xgboost-1a2b3c4d", "model": "xgboost", "params": {"max_depth": 3, "learning_rate": 0.1},
         "model_index": 0, "optuna_number": None}
GPU_TRIAL = {"trial_id": "mlp-5e6f7a8b", "model": "mlp", "params": {"hidden_layer_sizes": [64]},
             "model_index": 1, "optuna_number": None}


def make_context(backend: str, **changes: Any) -> SweepContext:
    return SweepContext(**{
        "experiment": "churn-baseline",
        "run_id": "20261123T000000-5a6e",
        "spec": SPEC,
        "features": ["tenure_days", "sessions_7d", "spend_28d"],
        "n_rows": 1000,
        "data_path": "/tmp/mlfleet-results/churn-baseline/20261123T000000-5a6e/data/train.parquet",
        "data_sha256": DATA_URI.rsplit("/", 2)[-2],
        "data_uri": DATA_URI,
        "results_dir": "/tmp/mlfleet-results/churn-baseline/20261123T000000-5a6e",
        "backend": backend,
        "study": "churn-baseline.20261123T000000-5a6e",
        "rounds": 1,
        "n_trials": 3,
        **changes,
    })


def make_batch(*, gpu: int = 0, batch_id: str = "r0-abcdef0123") -> dict[str, Any]:
    if gpu:
        return {"batch_id": batch_id, "round": 0, "resources": {"cpu": 4.0, "memory_gb": 16.0, "gpu": gpu},
                "trials": [GPU_TRIAL]}
    return {"batch_id": batch_id, "round": 0, "resources": {"cpu": 2.0, "memory_gb": 4.0, "gpu": 0},
            "trials": [TRIAL]}



def planned_batches(settings: Settings, backend: str) -> list[dict[str, Any]]:
    """Round 0 of SPEC as the planner makes it: a CPU batch (xgboost) and a GPU batch (mlp)."""
    spec = parse_spec(SPEC)
    return plan_round(spec, expand(spec), round_index=0, settings=settings, backend=backend)
