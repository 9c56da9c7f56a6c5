"""Sweep run ids: sortable by time, safe in paths and job names, deterministic for an Airflow run."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from mlfleet.storage import short_digest

# Hex digits of the Airflow run id's SHA-256 that an Airflow run's sweep id keeps: 64 bits, so two
# Airflow runs sharing a sweep folder, its Optuna study and its job names would take about 4e9
# runs in one second (the birthday bound). Run ids that differ only after the second
# (`manual__...T10:00:00.000064+00:00` and `.000169+00:00`) shared a folder with 4 digits.
# The id stays short enough for every name built from it: 32 characters in a Kubernetes label
# value (at most 63), and SageMaker job names take a digest of it (mlfleet.backends.naming).
AIRFLOW_DIGEST_LENGTH = 16


def new_run_id(now: datetime | None = None, salt: str = "") -> str:
    """`20261122T101500-3f2a`: sortable by time, unique with the salt."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{short_digest(f'{now.isoformat()}{salt}', 4)}"


def run_id_from_airflow(dag_run_id: str) -> str:
    """`20261123T100000-<16 hex>`: a filesystem- and job-name-safe id, the same for every attempt of
    one Airflow run (a retried prepare finds its own folder), different for different runs."""
    stamp = re.sub(r"[^0-9T]", "", dag_run_id.split("__")[-1])[:15] or "run"
    return f"{stamp}-{short_digest(dag_run_id, AIRFLOW_DIGEST_LENGTH)}"
