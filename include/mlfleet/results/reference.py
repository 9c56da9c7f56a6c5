"""The champion's drift reference: statistics of its training set, an artifact of its MLflow run.

A version registered since the drift check reads statistics only carries `reference/statistics.json`
(mergeable sketches of every feature, made by `mlfleet.drift.sketch.of_frame`: a few KB per feature,
whatever the rows); this module stores and fetches it as opaque JSON. Versions registered before
carry `reference/reference.parquet`, the whole training frame, which `load_reference` still reads.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from mlfleet.results.registry import CHAMPION
from mlfleet.results.tracking import tracking_client

REFERENCE_DIR = "reference"  # a version's run holds its drift reference under this artifact folder
STATISTICS_FILE = "statistics.json"
REFERENCE_FILE = "reference.parquet"  # the frame itself: versions registered before statistics


def log_reference_statistics(statistics: dict[str, Any]) -> None:
    """Log the training frame's statistics into the active MLflow run (MLflow writes the file whole)."""
    import mlflow

    mlflow.log_dict(statistics, f"{REFERENCE_DIR}/{STATISTICS_FILE}")


def load_reference(settings: Any, name: str, alias: str = CHAMPION) -> Any:
    """The training frame a version registered before statistics was fitted on (its old drift baseline)."""
    import pandas as pd

    client = tracking_client(settings)
    mv = client.get_model_version_by_alias(name, alias)
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(mv.run_id, f"{REFERENCE_DIR}/{REFERENCE_FILE}", tmp)
        return pd.read_parquet(local)


def load_reference_statistics(settings: Any, name: str, alias: str = CHAMPION) -> dict[str, Any] | None:
    """The aliased version's training statistics (the JSON logged at registration), or None for a
    version registered before statistics, which has only its training frame (`load_reference`)."""
    client = tracking_client(settings)
    mv = client.get_model_version_by_alias(name, alias)
    stored = {a.path for a in client.list_artifacts(mv.run_id, REFERENCE_DIR)}
    if f"{REFERENCE_DIR}/{STATISTICS_FILE}" not in stored:
        if f"{REFERENCE_DIR}/{REFERENCE_FILE}" in stored:
            return None
        raise FileNotFoundError(f"model {name!r} version {mv.version} (run {mv.run_id}) has no drift reference "
                                f"under {REFERENCE_DIR}/: expected {STATISTICS_FILE} or {REFERENCE_FILE}")
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(mv.run_id, f"{REFERENCE_DIR}/{STATISTICS_FILE}", tmp)
        with open(local) as handle:
            return json.load(handle)
