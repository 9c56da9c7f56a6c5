"""Which days a feature_pipeline run computes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any


def feature_interval(params: dict[str, Any], data_interval_start: datetime, data_interval_end: datetime) -> dict[str, str]:
    """The params' start/end when given (backfills), else the run's data interval (end exclusive)."""
    start = params.get("start") or data_interval_start.date().isoformat()
    end = params.get("end") or (data_interval_end - timedelta(days=1)).date().isoformat()
    if date.fromisoformat(end) < date.fromisoformat(start):
        raise ValueError(f"params.end {end} is before params.start {start}")
    return {"start": start, "end": end}


def materialize_window(interval: dict[str, str]) -> tuple[datetime, datetime]:
    """[start, end) of event timestamps for the online store: a day's rows are stamped at the next
    midnight, so the window runs to just past the midnight after the interval's last day."""
    start = datetime.fromisoformat(interval["start"]).replace(tzinfo=timezone.utc)
    end = datetime.fromisoformat(interval["end"]).replace(tzinfo=timezone.utc) + timedelta(days=1, seconds=1)
    return start, end
