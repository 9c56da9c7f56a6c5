"""One point-in-time training set through each offline store mlfleet configures: the same rows.

feature_repo/ as checked in, over small offline tables and labels in the layout the feature job
writes (`<root>/offline/<view>/feature_date=YYYY-MM-DD/`, rows stamped at the next midnight UTC;
`<root>/offline/labels/snapshot_date=YYYY-MM-DD/`). `training_set` is built three times: through
DuckDB (feature_store.yaml's default for a local feature root), Feast's dask `file` store (its
choice for an s3:// root) and Spark (feature_store.production.yaml, with Redis online). Each must
equal a pandas as-of join with the views' TTL, including the edges: a row stamped exactly at the
entity timestamp is used, one a second later is not; a row exactly one TTL old is used, an older
one is not (its features are 0).
"""

from __future__ import annotations

import time
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_rows import VIEWS, channel_values, spend_values

PRODUCTION = "feature_store.production.yaml"
FIRST_DAY = date(2026, 8, 1)
DAYS = [FIRST_DAY + timedelta(days=k) for k in range(12)]
CUSTOMERS = list(range(1, 41))
SNAPSHOTS = [date(2026, 8, 5), date(2026, 8, 8), date(2026, 8, 12)]
EDGE = 41  # one spend row, exactly one TTL before the second snapshot, then none
NEVER = 42  # labelled, never in a feature table
STALE_SPEND = 7  # customer_spend rows stop after day 2, customer_channels rows go on

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_environment")]


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def has_row(view: str, c: int, k: int, ttl_days: int) -> bool:
    """Gaps of every length, some longer than the TTL."""
    if c == EDGE:
        return view == "customer_spend" and DAYS[k] == SNAPSHOTS[1] - timedelta(days=ttl_days + 1)
    if c == STALE_SPEND and view == "customer_spend":
        return k <= 2
    return (c + k) % 4 != 0 if view == "customer_spend" else (c * k) % 5 != 1


def write_tables(offline: Path, ttl_days: int) -> None:
    """Every view's daily partitions and the weekly labels, as the feature job writes them."""
    for view, (make, types) in VIEWS.items():
        schema = pa.schema([("customer_id", pa.int64()), *types.items(),
                            ("event_timestamp", pa.timestamp("us", tz="UTC")), ("feature_date", pa.string())])
        rows = [{"customer_id": c, **make(c, k), "event_timestamp": midnight(day + timedelta(days=1)),
                 "feature_date": day.isoformat()}
                for k, day in enumerate(DAYS) for c in [*CUSTOMERS, EDGE] if has_row(view, c, k, ttl_days)]
        pq.write_to_dataset(pa.Table.from_pylist(rows, schema=schema), offline / view, partition_cols=["feature_date"])
    labels = [{"customer_id": c, "event_timestamp": midnight(s), "churned": int((c + i) % 3 == 0),
               "spend_next_14d": float(c * i), "snapshot_date": s.isoformat()}
              for i, s in enumerate(SNAPSHOTS) for c in [*CUSTOMERS, EDGE, NEVER]]
    schema = pa.schema([("customer_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
                        ("churned", pa.int32()), ("spend_next_14d", pa.float64()), ("snapshot_date", pa.string())])
    pq.write_to_dataset(pa.Table.from_pylist(labels, schema=schema), offline / "labels",
                        partition_cols=["snapshot_date"])


def expected_training_set(entity_df: pd.DataFrame, offline: Path, ttl: timedelta) -> pd.DataFrame:
    """The as-of join by hand: the newest row with entity_ts - ttl <= event_timestamp <= entity_ts."""
    frame = entity_df.assign(event_timestamp=entity_df["event_timestamp"].astype("datetime64[us, UTC]"))
    frame = frame.sort_values("event_timestamp").reset_index(drop=True)
    for view, (make, _) in VIEWS.items():
        table = pd.read_parquet(offline / view).drop(columns="feature_date").rename(
            columns={"event_timestamp": "feature_timestamp"}).sort_values("feature_timestamp")
        table["feature_timestamp"] = table["feature_timestamp"].astype("datetime64[us, UTC]")
        frame = pd.merge_asof(frame, table, left_on="event_timestamp", right_on="feature_timestamp",
                              by="customer_id", direction="backward", tolerance=ttl, allow_exact_matches=True)
        frame = frame.drop(columns="feature_timestamp")
        frame[list(make(1, 0))] = frame[list(make(1, 0))].astype("float64").fillna(0.0)
    return comparable(frame)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(event_timestamp=pd.to_datetime(frame["event_timestamp"], utc=True).astype(
        "datetime64[us, UTC]"), churned=frame["churned"].astype("int64"))
    return frame.sort_values(["event_timestamp", "customer_id"]).reset_index(drop=True)[sorted(frame.columns)]


def test_every_offline_store_gives_the_same_point_in_time_training_set(redis_url: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import feast.batch_feature_view  # noqa: F401 - its import-time simplefilter("once") first, then ours

    from mlfleet.config import get_settings
    from mlfleet.features import repository, training_sets

    warnings.filterwarnings("ignore", "Batch feature views are experimental", RuntimeWarning)
    warnings.filterwarnings("ignore", "The spark offline store is an experimental feature", RuntimeWarning)
    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLEET_FEATURE_REPO", raising=False)  # the repo as checked in
    monkeypatch.delenv("MLFLEET_FEAST_CONFIG", raising=False)
    monkeypatch.delenv("MLFLEET_FEAST_OFFLINE_STORE", raising=False)
    monkeypatch.delenv("MLFLEET_OFFLINE_STORE", raising=False)
    monkeypatch.setenv("MLFLEET_REDIS_CONNECTION", redis_url)

    settings = get_settings()
    assert repository.repo_config(settings).offline_store.type == "duckdb"  # a local feature root
    repository.apply(settings)
    [ttl] = {view.ttl for view in repository.online_views(repository.store(settings))}
    assert ttl % timedelta(days=1) == timedelta(0), ttl  # the edge rows below sit on midnights
    write_tables(settings.offline_dir, ttl.days)

    labels = training_sets.read_labels(settings)
    cutoff = labels[labels["event_timestamp"] == midnight(SNAPSHOTS[1])].head(5)
    just_before = cutoff.assign(event_timestamp=cutoff["event_timestamp"] - pd.Timedelta(seconds=1))
    entity_df = pd.concat([labels, just_before], ignore_index=True)
    expected = expected_training_set(entity_df, settings.offline_dir, ttl)
    assert len(expected) == len(entity_df) == 3 * (len(CUSTOMERS) + 2) + 5

    # The edges, spelled out: the reference itself must hold them.
    def row(c: int, at: datetime) -> pd.Series:
        [index] = expected.index[(expected["customer_id"] == c) & (expected["event_timestamp"] == at)]
        return expected.loc[index]

    second = midnight(SNAPSHOTS[1])
    k_edge = DAYS.index(SNAPSHOTS[1] - timedelta(days=ttl.days + 1))
    assert row(EDGE, second)["spend_7d"] == spend_values(EDGE, k_edge)["spend_7d"]  # exactly one TTL old
    assert row(EDGE, midnight(SNAPSHOTS[2]))["spend_7d"] == 0.0  # older than the TTL
    assert (row(NEVER, second)[[*spend_values(1, 0), *channel_values(1, 0)]] == 0.0).all()
    # one view stale, the other not: dask's store drops such an entity row; training_set keeps it
    assert row(STALE_SPEND, second)["spend_7d"] == 0.0 and row(STALE_SPEND, second)["categories_28d"] > 0
    assert row(1, second)["spend_28d"] == spend_values(1, DAYS.index(SNAPSHOTS[1]) - 1)["spend_28d"]  # at the edge
    assert row(1, second - timedelta(seconds=1))["spend_28d"] == spend_values(1, DAYS.index(SNAPSHOTS[1]) - 2)[
        "spend_28d"]  # a second before: the day before's row
    assert (expected[[*spend_values(1, 0)]] == 0.0).all(axis=1).sum() > len(SNAPSHOTS)  # gaps past the TTL

    stores = {"duckdb": {}, "file": {"MLFLEET_OFFLINE_STORE": "file"},
              "spark": {"MLFLEET_FEAST_CONFIG": PRODUCTION}}
    seconds = {}
    try:
        for name, env in stores.items():
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            settings = get_settings()
            assert repository.repo_config(settings).offline_store.type == name
            repository.apply(settings)  # Spark reads the offline tables as SparkSources: apply declares them so
            started = time.perf_counter()
            got = training_sets.training_set(settings, "churn_v1", entity_df=entity_df.copy())
            seconds[name] = time.perf_counter() - started
            pd.testing.assert_frame_equal(comparable(got), expected, obj=f"training set through {name}")
    finally:
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession()
        if session is not None:
            session.stop()
    print("training set seconds per offline store:", {k: round(v, 2) for k, v in seconds.items()})
