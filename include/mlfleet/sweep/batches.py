"""One batch of a sweep: what the training entrypoint gets, running it here, collecting its rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.sweep.context import SweepContext


def batch_dir(context: SweepContext, batch: dict[str, Any]) -> Path:
    return context.results_path / "batches" / batch["batch_id"]


def batch_job(context: SweepContext, batch: dict[str, Any]) -> dict[str, Any]:
    """What the training entrypoint needs for one batch, on any backend."""
    spec = context.experiment_spec
    return {
        "task": spec.task,
        "target": spec.target,
        "features": context.features,
        "metric": spec.metric,
        "cv": {"folds": spec.cv.folds, "seed": spec.cv.seed},
        "trials": batch["trials"],
        "prune": spec.search.prune.model_dump() if spec.search.prune else None,
    }


def run_batch(context: SweepContext, batch: dict[str, Any], *, settings: Settings) -> dict[str, Any]:
    """Run one batch on this machine (the local backend); returns a small summary for XCom."""
    from mlfleet.backends import batch_results, local

    directory = local.stage_batch(batch_dir(context, batch), job=batch_job(context, batch),
                                  data_path=Path(context.data_path))
    rows = local.run_batch(
        directory,
        trial_ids=[t["trial_id"] for t in batch["trials"]],
        workers=settings.workers,
        timeout_seconds=context.timeout_minutes * 60,
    )
    return batch_results.summary(batch["batch_id"], rows)


def collect_rows(context: SweepContext) -> list[dict[str, Any]]:
    """Every finished trial row of the sweep, read from the batches' outputs (not from XCom)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(context.results_path.glob("batches/*/model/results.json")):
        for row in json.loads(path.read_text()):
            rows[row["trial_id"]] = row
    return list(rows.values())
