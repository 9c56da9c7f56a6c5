"""Materialization writes the newest row per entity and view of the interval, and nothing else.

The repo as checked in (its default offline store, the SQLite online store), feast apply, offline
tables in the layout the feature job writes, then `repository.materialize` over part of them. The
online store must hold each customer's newest row inside the interval (not a newer one outside it,
not an older one), customers with no row inside the interval are left alone, and the count written is
one row per customer and view: O(entities), whatever the number of days.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DAYS = [date(2026, 8, 1) + timedelta(days=k) for k in range(6)]
# customer -> the day indexes it has a spend row on; 4 has rows only after the interval, 5 only before it
ROWS = {1: [0, 1, 2, 3, 4, 5], 2: [0, 2], 3: [1], 4: [5], 5: [0]}
INTERVAL = (1, 4)  # materialize the rows of DAYS[1] .. DAYS[4]

pytestmark = pytest.mark.slow


def stamp(day: date) -> datetime:
    """A day's features are stamped at the next midnight UTC, as the feature job does."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)


def spend(customer: int, k: int) -> float:
    return 100.0 * customer + k


def write_tables(offline: Path) -> None:
    """customer_spend and customer_channels, one Parquet file per feature_date partition."""
    columns = {
        "customer_spend": {"spend_7d": pa.float64(), "spend_28d": pa.float64(), "orders_7d": pa.int64(),
                           "orders_28d": pa.int64(), "avg_amount_28d": pa.float64()},
        "customer_channels": {"app_share_28d": pa.float64(), "store_share_28d": pa.float64(),
                              "categories_28d": pa.int64(), "days_since_last_order": pa.int64()},
    }
    for view, types in columns.items():
        schema = pa.schema([("customer_id", pa.int64()), *types.items(), ("event_timestamp", pa.timestamp("us", tz="UTC"))])
        for k, day in enumerate(DAYS):
            customers = [c for c, days in ROWS.items() if k in days]
            rows = [{"customer_id": c, **{name: (spend(c, k) if t == pa.float64() else c + k) for name, t in types.items()},
                     "event_timestamp": stamp(day)} for c in customers]
            directory = offline / view / f"feature_date={day.isoformat()}"
            directory.mkdir(parents=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), directory / "part-0.parquet")


@pytest.fixture
def repo_with_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import feast.batch_feature_view  # noqa: F401 - its import-time simplefilter("once") first, then ours

    from mlfleet.config import get_settings
    from mlfleet.features import repository

    warnings.filterwarnings("ignore", "Batch feature views are experimental", RuntimeWarning)
    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLEET_FEATURE_REPO", raising=False)
    monkeypatch.delenv("MLFLEET_FEAST_CONFIG", raising=False)
    settings = get_settings()
    repository.apply(settings)
    write_tables(settings.offline_dir)
    return settings


def online_spend(settings, customers: list[int]) -> list[float | None]:
    from mlfleet.features import repository

    fs = repository.store(settings)
    rows = [{"customer_id": c} for c in customers]
    return fs.get_online_features(features=["customer_spend:spend_28d"], entity_rows=rows).to_dict()["spend_28d"]


@pytest.mark.parametrize("chunk_rows", [1, 20_000])
def test_only_the_newest_row_of_the_interval_is_written(repo_with_tables, chunk_rows: int) -> None:
    from mlfleet.features import repository

    settings = repo_with_tables
    first, last = INTERVAL
    written = repository.materialize(settings, start=stamp(DAYS[first]), end=stamp(DAYS[last]) + timedelta(seconds=1),
                                     chunk_rows=chunk_rows)
    inside = {c for c, days in ROWS.items() if any(first <= k <= last for k in days)}
    assert written == {"customer_spend": len(inside), "customer_channels": len(inside)}

    expected = {c: spend(c, max(k for k in days if first <= k <= last)) for c, days in ROWS.items() if c in inside}
    customers = sorted(ROWS)
    got = dict(zip(customers, online_spend(settings, customers)))
    assert {c: got[c] for c in inside} == pytest.approx(expected)
    # 1's newest row inside is day 4, not day 5; 2's is day 2; 3's is day 1
    assert got[1] == spend(1, 4) and got[2] == spend(2, 2) and got[3] == spend(3, 1)
    assert got[4] is None and got[5] is None  # rows only outside the interval never reach the store

    # the next day's run moves 1 (and 4) on to day 5 and leaves the others as they were
    again = repository.materialize(settings, start=stamp(DAYS[5]), end=stamp(DAYS[5]) + timedelta(seconds=1),
                                   chunk_rows=chunk_rows)
    assert again == {"customer_spend": 2, "customer_channels": 2}
    got = dict(zip(customers, online_spend(settings, customers)))
    assert (got[1], got[2], got[3], got[4], got[5]) == (spend(1, 5), spend(2, 2), spend(3, 1), spend(4, 5), None)


def test_bad_intervals_and_missing_tables_are_refused(repo_with_tables, tmp_path: Path, monkeypatch) -> None:
    from mlfleet.config import get_settings
    from mlfleet.features import repository

    settings = repo_with_tables
    start = stamp(DAYS[2])
    with pytest.raises(ValueError, match=r"end 2026-08-04T00:00:00\+00:00 is not after start 2026-08-04T00:00:00\+00:00"):
        repository.materialize(settings, start=start, end=start)
    with pytest.raises(ValueError, match="chunk_rows must be at least 1, got 0"):
        repository.materialize(settings, start=start, end=start + timedelta(days=1), chunk_rows=0)

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "empty"))
    empty = get_settings()
    repository.apply(empty)
    with pytest.raises(FileNotFoundError, match=r"feature view customer_\w+: no offline table at .*; run the feature job first"):
        repository.materialize(empty, start=start, end=start + timedelta(days=1))
