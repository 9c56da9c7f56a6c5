"""The feature views aggregate per customer-day before windowing, and still give the old output.

customer_spend and customer_channels used to join every feature date with every raw event of its
28-day window (events x 28 rows); they now sum events per (customer_id, event_date) first and join
only those daily rows (issue 29). This compares them, row for row and type for type, with the old
join-style transformations kept below as the reference, on 30 feature dates of a small stream.
Doubles are compared with a relative tolerance of 1e-9: summing daily sums instead of events
changes the summation order, hence the last bits. Integers, dates and nulls must match exactly.

The udfs are rebuilt from their source text alone, as Feast rebuilds them from the registry,
so an import left outside the function fails here too.
"""

from __future__ import annotations

import ast
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
START = date(2026, 8, 1)
# Events on days 0..59; features for days 25..54, so every window has events both below its
# lower bound and after its feature date: an off-by-one bound on either side changes rows.
FEATURE_DATES = [START + timedelta(days=25 + i) for i in range(30)]
REL_TOL = 1e-9


def old_customer_spend_features(events, feature_dates, window_days=28):
    """The join-style transformation before issue 29 (window_days only to prove the check can fail)."""
    from pyspark.sql import functions as F

    joined = feature_dates.join(
        events,
        (events.event_date > F.date_sub(feature_dates.feature_date, window_days))
        & (events.event_date <= feature_dates.feature_date),
    )
    last_7d = events.event_date > F.date_sub(feature_dates.feature_date, 7)
    return joined.groupBy("customer_id", "feature_date").agg(
        F.sum(F.when(last_7d, F.col("amount")).otherwise(0.0)).alias("spend_7d"),
        F.sum("amount").alias("spend_28d"),
        F.sum(F.when(last_7d, 1).otherwise(0)).cast("bigint").alias("orders_7d"),
        F.count("*").cast("bigint").alias("orders_28d"),
        F.avg("amount").alias("avg_amount_28d"),
    )


def old_customer_channel_features(events, feature_dates, window_days=28):
    """The join-style transformation before issue 29."""
    from pyspark.sql import functions as F

    window = feature_dates.join(
        events,
        (events.event_date > F.date_sub(feature_dates.feature_date, window_days))
        & (events.event_date <= feature_dates.feature_date),
    )
    return window.groupBy("customer_id", "feature_date").agg(
        F.avg((F.col("channel") == "app").cast("double")).alias("app_share_28d"),
        F.avg((F.col("channel") == "store").cast("double")).alias("store_share_28d"),
        F.countDistinct("category").cast("bigint").alias("categories_28d"),
        F.datediff(F.first("feature_date"), F.max("event_date")).cast("bigint").alias("days_since_last_order"),
    )


def udf_from_source(file: str, name: str) -> Callable[..., Any]:
    """The view file's function compiled alone, in an empty namespace (what Feast's registry holds)."""
    tree = ast.parse((ROOT / "feature_repo" / file).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), file, "exec"), namespace)
    return namespace[name]


VIEWS = {
    "customer_spend": (udf_from_source("customer_spend.py", "customer_spend_features"), old_customer_spend_features),
    "customer_channels": (udf_from_source("customer_channels.py", "customer_channel_features"),
                          old_customer_channel_features),
}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A small local session configured as the feature job configures its own."""
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    session = existing or (
        SparkSession.builder.master("local[2]").appName("test-feature-views-daily")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    if existing is None:
        session.stop()


@pytest.fixture(scope="module")
def inputs(spark, tmp_path_factory) -> tuple[Any, Any]:
    """Raw events read back from a raw zone the way the feature job reads them, and the feature dates."""
    from pyspark.sql import functions as F

    from mlfleet.demo.events import generate_events, write_raw_zone

    raw = tmp_path_factory.mktemp("raw") / "events"
    write_raw_zone(generate_events(customers=150, start=START, days=60, seed=3, shift_day=40), raw)
    events = (spark.read.option("basePath", str(raw)).parquet(str(raw))
              .withColumn("event_date", F.to_date("event_date")).cache())
    dates = spark.createDataFrame([(d,) for d in FEATURE_DATES], "feature_date date")
    return events, dates


def rows(frame) -> list[dict[str, Any]]:
    return sorted((row.asDict() for row in frame.collect()), key=lambda r: (r["customer_id"], r["feature_date"]))


def mismatches(new, old) -> list[str]:
    """Differences between two outputs: schema (names, order, types), then keys, then values."""
    problems = []
    new_schema = [(f.name, f.dataType) for f in new.schema.fields]
    old_schema = [(f.name, f.dataType) for f in old.schema.fields]
    if new_schema != old_schema:
        problems.append(f"schema {new_schema} != {old_schema}")
    got, want = rows(new), rows(old)
    if [(r["customer_id"], r["feature_date"]) for r in got] != [(r["customer_id"], r["feature_date"]) for r in want]:
        return problems + [f"keys differ: {len(got)} rows vs {len(want)}"]
    for a, b in zip(got, want):
        for column, expected in b.items():
            value = a.get(column)
            same = (value == expected if not isinstance(expected, float) or value is None
                    else math.isclose(value, expected, rel_tol=REL_TOL, abs_tol=0.0))
            if not same:
                problems.append(f"{a['customer_id']} {a['feature_date']} {column}: {value!r} != {expected!r}")
    return problems


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_daily_aggregates_match_the_event_join(view, inputs) -> None:
    events, dates = inputs
    new_udf, old_udf = VIEWS[view]
    new, old = new_udf(events, dates), old_udf(events, dates)
    assert old.count() > 2000  # ~100 active customers x 30 days: enough rows to mean something
    assert mismatches(new, old) == []


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_comparison_catches_a_window_off_by_one_day(view, inputs) -> None:
    events, dates = inputs
    new_udf, old_udf = VIEWS[view]
    assert mismatches(new_udf(events, dates), old_udf(events, dates, window_days=27))
    assert mismatches(new_udf(events, dates), old_udf(events, dates, window_days=29))
