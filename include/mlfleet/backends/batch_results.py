"""Where a batch's result rows land on the Airflow side, whichever backend ran the batch.

Every backend ends by writing the batch's rows to `<results_dir>/batches/<batch_id>/model/results.json`
(the local backend's own layout), so collecting a sweep reads one place, and by returning the
same small summary to XCom. `results_dir` is a local folder or an object-store prefix, read and
written with the Airflow connection `conn_id`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlfleet.backends.object_store import location
from mlfleet.storage import Location, write_json_atomic


def rows_path(results_dir: str | Path | Location, batch_id: str, *, conn_id: str | None = None) -> Location:
    return location(results_dir, conn_id=conn_id) / "batches" / batch_id / "model" / "results.json"


def store_rows(results_dir: str | Path | Location, batch_id: str, rows: list[dict[str, Any]], *,
               conn_id: str | None = None, **extra: Any) -> Location:
    """Write the rows (with backend facts such as the job name added to each) atomically."""
    path = rows_path(results_dir, batch_id, conn_id=conn_id)
    write_json_atomic(path, [{**row, **extra} for row in rows])
    return path


def read_rows(results_dir: str | Path | Location, batch_id: str, *, conn_id: str | None = None
              ) -> list[dict[str, Any]] | None:
    path = rows_path(results_dir, batch_id, conn_id=conn_id)
    return json.loads(path.read_text()) if path.is_file() else None


def summary(batch_id: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """What a batch task returns to XCom: counts and the best trial, never the data."""
    ok = [r for r in rows if r["status"] == "success"]
    best = max(ok, key=lambda r: r["mean_score"]) if ok else None
    return {"batch_id": batch_id, "trials": len(rows), "failed": len(rows) - len(ok),
            "best": {"trial_id": best["trial_id"], "mean_score": best["mean_score"]} if best else None, **extra}
