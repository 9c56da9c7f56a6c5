"""One batch of a sweep: what the training entrypoint gets, running it here, collecting its rows."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.storage import Location, is_object_path
from mlfleet.sweep.context import SweepContext


def batch_dir(context: SweepContext, batch: dict[str, Any]) -> Location:
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


def run_batch(context: SweepContext, batch: dict[str, Any], *, settings: Settings,
              while_training: Callable[[], object] | None = None) -> dict[str, Any]:
    """Run one batch on this machine (the local backend); returns a small summary for XCom.

    `while_training`: called here while the batch's training process runs (mlfleet.backends.local).

    With local sweep state the batch trains in its results folder, so a retry resumes from its
    checkpoints. With state in the object store it trains in a scratch folder of its own, from a
    copy of the training set, and only its rows are written back: a retry that finds them reuses
    them, one that does not re-runs the batch (SageMaker and Kubernetes batches, the usual backends
    of such a deployment, keep their checkpoints in the object store).
    """
    from mlfleet.backends import batch_results

    if not is_object_path(context.results_path):
        rows = _train(Path(batch_dir(context, batch)), context, batch, settings=settings, data_path=Path(context.data_path),
                      while_training=while_training)
        return batch_results.summary(batch["batch_id"], rows)
    done = batch_results.read_rows(context.results_path, batch["batch_id"])
    if done is not None and sorted(r["trial_id"] for r in done) == sorted(t["trial_id"] for t in batch["trials"]):
        return batch_results.summary(batch["batch_id"], done)
    with tempfile.TemporaryDirectory(prefix=f"mlfleet-{batch['batch_id']}-") as scratch:
        data_path = Path(scratch) / "data" / Path(context.data_path).name
        data_path.parent.mkdir()
        data_path.write_bytes(context.stored(context.data_path).read_bytes())
        rows = _train(Path(scratch) / "batch", context, batch, settings=settings, data_path=data_path,
                      while_training=while_training)
    batch_results.store_rows(context.results_path, batch["batch_id"], rows)
    return batch_results.summary(batch["batch_id"], rows)


def _train(directory: Path, context: SweepContext, batch: dict[str, Any], *, settings: Settings,
           data_path: Path, while_training: Callable[[], object] | None) -> list[dict[str, Any]]:
    from mlfleet.backends import local

    local.stage_batch(directory, job=batch_job(context, batch), data_path=data_path)
    return local.run_batch(
        directory,
        trial_ids=[t["trial_id"] for t in batch["trials"]],
        workers=settings.workers,
        timeout_seconds=context.timeout_minutes * 60,
        while_training=while_training,
    )


def collect_rows(context: SweepContext) -> list[dict[str, Any]]:
    """Every finished trial row of the sweep, read from the batches' outputs (not from XCom)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(context.results_path.glob("batches/*/model/results.json"), key=str):
        for row in json.loads(path.read_text()):
            rows[row["trial_id"]] = row
    return list(rows.values())
