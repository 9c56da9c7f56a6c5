"""Sweep run ids: sortable by time, safe in paths and job names, deterministic for an Airflow run."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from mlfleet.storage import short_digest


def new_run_id(now: datetime | None = None, salt: str = "") -> str:
    """`20261122T101500-3f2a`: sortable by time, unique with the salt."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{short_digest(f'{now.isoformat()}{salt}', 4)}"


def run_id_from_airflow(dag_run_id: str) -> str:
    """A filesystem- and job-name-safe, deterministic id for an Airflow run id."""
    stamp = re.sub(r"[^0-9T]", "", dag_run_id.split("__")[-1])[:15] or "run"
    return f"{stamp}-{short_digest(dag_run_id, 4)}"
