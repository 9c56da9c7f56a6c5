"""PySpark feature job: raw events -> one date-partitioned offline table per Feast feature view.

Run by spark-submit (the apache-spark provider's SparkSubmitOperator locally, EMR Serverless in
production) with the interval to compute:

    spark-submit feature_job.py --start 2026-09-01 --end 2026-09-01 \
        --raw .../raw/events --offline .../offline --feature-repo feature_repo

The feature views come from the Feast registry (a file, or an s3:// object on EMR): every
BatchFeatureView derived from the raw `events` view is computed by its own transformation and
written to its own source's path, so a new view file needs no change here.
Each run overwrites exactly the partitions of its interval (dynamic partition overwrite), so a
re-run of the same day replaces that day and never duplicates it. The churn labels (the entity
rows training sets are built from) are written alongside, as `labels/snapshot_date=...`, and so
are each view's per-day feature statistics, `_stats/<view>/feature_date=...` (what the drift check
reads instead of the rows).

This file imports only pyspark and feast: it is shipped alone to the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date, timedelta
from typing import Any

RAW_VIEW = "events"
STATS_DIR = "_stats"  # offline/_stats/<view>/feature_date=...: what the drift check reads
# The bucket scheme of mlfleet.drift.sketch, copied (this file ships alone; a test keeps them equal).
SKETCH_GAMMA, SKETCH_TINY, SKETCH_OFFSET = 1.01, 1e-9, 4000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="mlfleet feature job")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day (inclusive)")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day (inclusive)")
    parser.add_argument("--raw", required=True, help="raw event zone (hive-partitioned by event_date)")
    parser.add_argument("--offline", required=True, help="offline feature zone root")
    parser.add_argument("--feature-repo", required=True, help="Feast repo (feature_store.yaml)")
    parser.add_argument("--home", help="MLFLEET_HOME the repo's feature_store.yaml expands (default: inherited)")
    parser.add_argument("--feature-root", help="MLFLEET_FEATURE_ROOT the repo expands: where its registry and "
                                               "tables live, a directory or s3:// prefix (default: inherited)")
    parser.add_argument("--lookback-days", type=int, default=28)
    parser.add_argument("--churn-horizon-days", type=int, default=14)
    parser.add_argument("--label-every-days", type=int, default=7,
                        help="label snapshots fall on days whose ordinal is a multiple of this (weekly by default)")
    parser.add_argument("--views", default="", help="comma-separated subset of views (default: all)")
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    return args


def derived_views(repo_path: str, only: set[str]) -> list[Any]:
    """The registry's batch feature views computed from the raw events view."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo_path)
    views = [
        view
        for view in store.list_batch_feature_views()
        if getattr(view, "feature_transformation", None) is not None
        and [src.name for src in view.source_views] == [RAW_VIEW]
    ]
    if only:
        unknown = only - {v.name for v in views}
        if unknown:
            raise SystemExit(f"--views: unknown feature view(s) {sorted(unknown)}; known: {sorted(v.name for v in views)}")
        views = [v for v in views if v.name in only]
    return views


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def date_frame(spark: Any, column: str, dates: list[date]) -> Any:
    """A one-column frame of dates built in the JVM: `createDataFrame` of a Python list starts Python
    workers (three of ~50 MB each at 1 M events, counted in the job's peak memory) for a few rows."""
    from pyspark.sql import functions as F

    return spark.range(1).select(F.explode(F.array(*[F.lit(d) for d in dates])).alias(column))


def read_events(spark: Any, raw: str, first: date, last: date) -> Any:
    from pyspark.sql import functions as F

    frame = spark.read.option("basePath", raw).parquet(raw)
    return frame.withColumn("event_date", F.to_date("event_date")).where(
        (F.col("event_date") >= F.lit(first)) & (F.col("event_date") <= F.lit(last))
    )


def compute_view(view: Any, events: Any, feature_dates: Any) -> Any:
    """Apply the view's own transformation and add the timestamp Feast joins on."""
    from pyspark.sql import functions as F

    result = view.feature_transformation.udf(events, feature_dates)
    expected = [f.name for f in view.schema]
    missing = [c for c in expected if c not in result.columns]
    if missing:
        raise SystemExit(f"feature view {view.name}: transformation output lacks columns {missing}")
    # A day's features are known at the end of that day: stamp them at the next midnight UTC,
    # so a label at snapshot time T joins only rows computed from events before T.
    stamp = F.to_timestamp(F.date_add("feature_date", 1))
    return result.select(*expected, stamp.alias(view.batch_source.timestamp_field), "feature_date")


def feature_statistics(table: Any, features: list[str]) -> Any:
    """Per day and feature, a log-bucket histogram: (feature_date, feature, bucket, count, low, high).

    Days merge exactly (sum the counts, min the lows, max the highs), so the drift check reads a few
    KB per view and day instead of the rows; see mlfleet.drift.sketch for the scheme. Null, NaN and
    infinite values are left out, as the drift statistics leave them out.
    """
    import math

    from pyspark.sql import functions as F

    pairs = F.explode(F.array(*[F.struct(F.lit(f).alias("feature"), F.col(f).cast("double").alias("value"))
                                for f in features]))
    values = table.select("feature_date", pairs.alias("pair")).select("feature_date", "pair.feature", "pair.value")
    finite = values.where(F.col("value").isNotNull() & ~F.isnan("value") & (F.abs("value") < float("inf")))
    magnitude = F.abs("value")
    index = F.lit(SKETCH_OFFSET) + F.ceil(F.log(magnitude) / F.lit(math.log(SKETCH_GAMMA)))
    bucket = F.when(magnitude < SKETCH_TINY, F.lit(0)).otherwise(F.signum("value") * index).cast("long")
    return finite.withColumn("bucket", bucket).groupBy("feature_date", "feature", "bucket").agg(
        F.count(F.lit(1)).alias("count"), F.min("value").alias("low"), F.max("value").alias("high"))


def numeric_features(view: Any, table: Any) -> list[str]:
    """The view's feature columns (not its entity keys) that hold numbers: the ones drift is checked on."""
    from pyspark.sql.types import NumericType

    types = {field.name: field.dataType for field in table.schema.fields}
    return [f.name for f in view.features if isinstance(types.get(f.name), NumericType)]


def compute_labels(events: Any, snapshots: Any, *, lookback_days: int, horizon_days: int) -> Any:
    """Churn labels: customers active in the lookback before a snapshot; churned = no purchase in the horizon after."""
    from pyspark.sql import functions as F

    before = (events.event_date >= F.date_sub(snapshots.snapshot_date, lookback_days)) & (
        events.event_date < snapshots.snapshot_date
    )
    after = (events.event_date >= snapshots.snapshot_date) & (
        events.event_date < F.date_add(snapshots.snapshot_date, horizon_days)
    )
    joined = snapshots.join(events, before | after)
    per_customer = joined.groupBy("customer_id", "snapshot_date").agg(
        F.sum(F.when(before, 1).otherwise(0)).alias("orders_before"),
        F.sum(F.when(after, F.col("amount")).otherwise(0.0)).alias("spend_next"),
    )
    return per_customer.where("orders_before > 0").select(
        "customer_id",
        F.to_timestamp("snapshot_date").alias("event_timestamp"),
        (F.col("spend_next") == 0).cast("int").alias("churned"),
        F.col("spend_next").alias(f"spend_next_{horizon_days}d"),
        "snapshot_date",
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.appName(f"mlfleet-features-{args.start}-{args.end}")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        # UTC-adjusted micros: pandas, pyarrow and Feast read tz-aware timestamps back.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    if args.home:
        os.environ["MLFLEET_HOME"] = args.home
    if args.feature_root:
        os.environ["MLFLEET_FEATURE_ROOT"] = args.feature_root
    # feature_store.yaml names its offline store through this variable; the job reads only the registry
    # (never the offline store), so any valid store does where the cluster's environment lacks it.
    os.environ.setdefault("MLFLEET_FEAST_OFFLINE_STORE", "file")
    only = {v for v in args.views.split(",") if v}
    views = derived_views(args.feature_repo, only)
    lookback = max([args.lookback_days] + [int(v.tags.get("lookback_days", 0)) for v in views])
    interval = days(args.start, args.end)
    events = read_events(spark, args.raw, args.start - timedelta(days=lookback), args.end).cache()
    feature_dates = date_frame(spark, "feature_date", interval)
    summary: dict[str, Any] = {"start": str(args.start), "end": str(args.end), "views": {}}
    for view in views:
        table = compute_view(view, events, feature_dates)
        path = view.batch_source.path
        # One file per day: the offline store reads every file of a view on each retrieval.
        table.repartition("feature_date").write.mode("overwrite").partitionBy("feature_date").parquet(path)
        written = spark.read.parquet(path).where(f"feature_date between '{args.start}' and '{args.end}'")
        # Statistics from the days just written (not a second run of the transformation), same overwrite.
        stats_path = f"{args.offline.rstrip('/')}/{STATS_DIR}/{view.name}"
        stats = feature_statistics(written, numeric_features(view, written))
        stats.repartition("feature_date").write.mode("overwrite").partitionBy("feature_date").parquet(stats_path)
        summary["views"][view.name] = {"path": path, "rows": written.count(), "statistics": stats_path}
    # Labels for a snapshot need the horizon after it: label the days whose horizon ends in this interval.
    horizon = args.churn_horizon_days
    label_days = [d - timedelta(days=horizon) for d in interval]
    label_days = [d for d in label_days if d.toordinal() % args.label_every_days == 0]
    labels_path = f"{args.offline.rstrip('/')}/labels"
    if label_days:
        label_events = read_events(spark, args.raw, label_days[0] - timedelta(days=lookback), args.end)
        snapshots = date_frame(spark, "snapshot_date", label_days)
        labels = compute_labels(label_events, snapshots, lookback_days=lookback, horizon_days=horizon)
        labels.repartition("snapshot_date").write.mode("overwrite").partitionBy("snapshot_date").parquet(labels_path)
    summary["labels"] = {"path": labels_path, "snapshots": [str(d) for d in label_days]}
    print(json.dumps(summary))
    spark.stop()
    return summary


if __name__ == "__main__":
    main()
