"""The current window of the drift check: the newest days of the feature job's per-day statistics.

The feature job writes, beside the offline tables, `offline/_stats/<view>/feature_date=<day>/`:
one small Parquet table per view and day (see `mlfleet.drift.sketch`). The window is the newest
`days` days of each view, merged; one listing and a few small files, whatever the rows or history.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from mlfleet.config import Settings

STATS_DIR = "_stats"  # under the offline zone; the leading underscore keeps Spark's table readers out
PARTITION = "feature_date="


def statistics_root(settings: Settings) -> str:
    """Where the feature job writes the per-day statistics (a directory or an s3:// prefix)."""
    return f"{settings.feature_root.rstrip('/')}/offline/{STATS_DIR}"


def _partitions(fs: Any, root: str) -> dict[str, dict[date, list[str]]]:
    """view -> day -> its Parquet files, from one recursive listing."""
    found: dict[str, dict[date, list[str]]] = {}
    for path in fs.find(root):
        parts = path[len(root):].strip("/").split("/")
        if len(parts) != 3 or not parts[1].startswith(PARTITION) or not parts[2].endswith(".parquet"):
            continue  # _SUCCESS markers, .crc files
        day = date.fromisoformat(parts[1][len(PARTITION):])
        found.setdefault(parts[0], {}).setdefault(day, []).append(path)
    return found


def recent_statistics(settings: Settings, *, features: list[str], days: int) -> tuple[dict[str, Any], int]:
    """Each feature's sketch over the newest `days` days of its view, and the window's rows (the most
    values any feature has). Raises LookupError naming the features no view's statistics hold."""
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    from mlfleet.drift import sketch
    from mlfleet.features import tables

    if days < 1:
        raise ValueError(f"drift window days: {days}; give at least 1")
    tables.connect(settings)
    uri = statistics_root(settings)
    fs, root = url_to_fs(uri)
    views = _partitions(fs, root.rstrip("/")) if fs.isdir(root) else {}
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for view, by_day in sorted(views.items()):
        newest = max(by_day)
        files = [f for day, paths in by_day.items() if day > newest - timedelta(days=days) for f in paths]
        frame = pq.read_table(files, filesystem=fs, columns=list(sketch.COLUMNS),
                              filters=[("feature", "in", features)]).to_pandas()
        for feature, summary in sketch.from_table(frame).items():
            if feature in owner:
                raise ValueError(f"feature {feature!r} has statistics in views {owner[feature]!r} and {view!r}; "
                                 "feature names must be unique across views")
            owner[feature], merged[feature] = view, summary
    missing = sorted(set(features) - set(merged))
    if missing:
        raise LookupError(f"no feature statistics under {uri} hold {missing}; the feature job writes them: "
                          f"re-run feature_pipeline for the newest {days} days")
    return merged, max(s.n for s in merged.values())
