"""How a customer buys: channel mix and breadth over the trailing 28 days, per customer per day."""

import inspect
from datetime import timedelta

from feast import Field
from feast.batch_feature_view import BatchFeatureView
from feast.types import Float64, Int64

from entities import customer
from sources import events, offline_table


def customer_channel_features(events, feature_dates):
    """events: raw events (customer_id, event_date, channel, category, ...); feature_dates: feature_date.

    Events are first counted per customer and day (channel counts, the day's set of categories),
    and only those daily rows are joined to the feature dates of their window: a customer-day is
    joined 28 times, not each of its events. The interval's few days are broadcast (without the
    hint Spark plans a cartesian product). Shares divide by the events that have a channel, as
    avg(channel == x) did; the window's categories are the distinct union of the daily sets.
    """
    from pyspark.sql import functions as F

    daily = events.groupBy("customer_id", "event_date").agg(
        F.count(F.when(F.col("channel") == "app", 1)).alias("app"),
        F.count(F.when(F.col("channel") == "store", 1)).alias("store"),
        F.count("channel").alias("channels"),
        F.collect_set("category").alias("categories"),
    )
    dates = F.broadcast(feature_dates)
    window = dates.join(
        daily,
        (daily.event_date > F.date_sub(dates.feature_date, 28)) & (daily.event_date <= dates.feature_date),
    )
    channels = F.sum("channels").cast("double")
    return window.groupBy("customer_id", "feature_date").agg(
        F.try_divide(F.sum("app").cast("double"), channels).alias("app_share_28d"),
        F.try_divide(F.sum("store").cast("double"), channels).alias("store_share_28d"),
        F.size(F.array_distinct(F.flatten(F.collect_list("categories")))).cast("bigint").alias("categories_28d"),
        F.datediff(F.col("feature_date"), F.max("event_date")).cast("bigint").alias("days_since_last_order"),
    )


customer_channels = BatchFeatureView(
    name="customer_channels",
    mode="python",
    udf=customer_channel_features,
    udf_string=inspect.getsource(customer_channel_features),
    source=[events],
    sink_source=offline_table("customer_channels"),
    entities=[customer],
    ttl=timedelta(days=3),
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="app_share_28d", dtype=Float64),
        Field(name="store_share_28d", dtype=Float64),
        Field(name="categories_28d", dtype=Int64),
        Field(name="days_since_last_order", dtype=Int64),
    ],
    online=True,
    offline=True,
    tags={"team": "growth", "lookback_days": "28"},
    owner="data-eng@mlfleet.dev",
)
