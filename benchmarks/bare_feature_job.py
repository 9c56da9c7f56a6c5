"""The feature job a Spark engineer would write by hand: the physical limit `make bench-data` compares with.

The same features as feature_repo/ (customer_spend and customer_channels) for the same days, without
Feast, the registry or mlfleet: read the raw events of the interval plus its lookback, aggregate them
once per customer and day, then aggregate the daily rows over each feature date's trailing window
(7 and 28 days), and write one date-partitioned Parquet table per view.

    python benchmarks/bare_feature_job.py --raw RAW --out OUT --start 2026-08-01 --end 2026-09-18
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta

WINDOW_DAYS = 28
HORIZON_DAYS = 14


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    args = parser.parse_args()

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.appName("bare-features")
             .config("spark.sql.session.timeZone", "UTC").config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false").config("spark.sql.sources.partitionOverwriteMode", "dynamic")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    started = time.perf_counter()
    first = args.start - timedelta(days=WINDOW_DAYS)
    events = (spark.read.option("basePath", args.raw).parquet(args.raw)
              .withColumn("event_date", F.to_date("event_date"))
              .where((F.col("event_date") >= F.lit(first)) & (F.col("event_date") <= F.lit(args.end))))
    daily = events.groupBy("customer_id", "event_date").agg(
        F.sum("amount").alias("spend"), F.count("*").alias("orders"),
        F.sum((F.col("channel") == "app").cast("long")).alias("app"),
        F.sum((F.col("channel") == "store").cast("long")).alias("store"),
        F.collect_set("category").alias("categories"),
    )
    days = (args.end - args.start).days + 1
    dates = spark.range(1).select(F.explode(F.sequence(F.lit(args.start), F.lit(args.end))).alias("feature_date"))
    window = dates.join(daily, (daily.event_date > F.date_sub(dates.feature_date, WINDOW_DAYS))
                        & (daily.event_date <= dates.feature_date))
    last_7d = window.event_date > F.date_sub(window.feature_date, 7)
    features = window.groupBy("customer_id", "feature_date").agg(
        F.sum(F.when(last_7d, F.col("spend")).otherwise(0.0)).alias("spend_7d"),
        F.sum("spend").alias("spend_28d"),
        F.sum(F.when(last_7d, F.col("orders")).otherwise(0)).alias("orders_7d"),
        F.sum("orders").alias("orders_28d"),
        (F.sum("spend") / F.sum("orders")).alias("avg_amount_28d"),
        (F.sum("app") / F.sum("orders")).alias("app_share_28d"),
        (F.sum("store") / F.sum("orders")).alias("store_share_28d"),
        F.size(F.array_distinct(F.flatten(F.collect_list("categories")))).cast("long").alias("categories_28d"),
        F.datediff(F.first("feature_date"), F.max("event_date")).cast("long").alias("days_since_last_order"),
    ).withColumn("event_timestamp", F.to_timestamp(F.date_add("feature_date", 1))).cache()
    views = {
        "customer_spend": ["spend_7d", "spend_28d", "orders_7d", "orders_28d", "avg_amount_28d"],
        "customer_channels": ["app_share_28d", "store_share_28d", "categories_28d", "days_since_last_order"],
    }
    rows = {}
    for view, columns in views.items():
        table = features.select("customer_id", *columns, "event_timestamp", "feature_date")
        table.repartition("feature_date").write.mode("overwrite").partitionBy("feature_date").parquet(f"{args.out}/{view}")
        rows[view] = spark.read.parquet(f"{args.out}/{view}").count()
    # Churn labels as the feature job writes them: weekly snapshots whose 14-day horizon ends in the
    # interval; active in the 28 days before, churned when no purchase in the 14 days after.
    snapshots = [args.start + timedelta(days=i) - timedelta(days=HORIZON_DAYS) for i in range(days)]
    snapshots = [d for d in snapshots if d.toordinal() % 7 == 0]
    if snapshots:
        snaps = spark.range(1).select(F.explode(F.array(*[F.lit(d) for d in snapshots])).alias("snapshot_date"))
        around = snaps.join(daily, (daily.event_date >= F.date_sub(snaps.snapshot_date, WINDOW_DAYS))
                            & (daily.event_date < F.date_add(snaps.snapshot_date, HORIZON_DAYS)))
        before = around.event_date < around.snapshot_date
        labels = around.groupBy("customer_id", "snapshot_date").agg(
            F.sum(F.when(before, F.col("orders")).otherwise(0)).alias("orders_before"),
            F.sum(F.when(~before, F.col("spend")).otherwise(0.0)).alias("spend_next"),
        ).where("orders_before > 0").select(
            "customer_id", F.to_timestamp("snapshot_date").alias("event_timestamp"),
            (F.col("spend_next") == 0).cast("int").alias("churned"), "snapshot_date")
        labels.repartition("snapshot_date").write.mode("overwrite").partitionBy("snapshot_date").parquet(f"{args.out}/labels")
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))
    spark.stop()


if __name__ == "__main__":
    main()
