"""Where a batch's result rows land on the Airflow side, whichever backend ran the batch.

Every backend ends by writing the batch's rows to `<results_dir>/batches/<batch_id>/model/results.json`
(the local backend's own layout), so collecting a sweep reads one place, and by returning the
same small summary to XCom.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlfleet.storage import write_json_atomic


def rows_path(results_dir: str | Path, batch_id: str) -> Path:
    return Path(results_dir) / "batches" / batch_id / "model" / "results.json"


def store_rows(results_dir: str | Path, batch_id: str, rows: list[dict[str, Any]], **extra: Any) -> Path:
    """Write the rows (with backend facts such as the job name added to each) atomically."""
    path = rows_path(results_dir, batch_id)
    write_json_atomic(path, [{**row, **extra} for row in rows])
    return path


def read_rows(results_dir: str | Path, batch_id: str) -> list[dict[str, Any]] | None:
    path = rows_path(results_dir, batch_id)
    return json.loads(path.read_text()) if path.is_file() else None


def summary(batch_id: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """What a batch task returns to XCom: counts and the best trial, never the data."""
    ok = [r for r in rows if r["status"] == "success"]
    best = max(ok, key=lambda r: r["mean_score"]) if ok else None
    return {"batch_id": batch_id, "trials": len(rows), "failed": len(rows) - len(ok),
            "best": {"trial_id": best["trial_id"], "mean_score": best["mean_score"]} if best else None, **extra}
