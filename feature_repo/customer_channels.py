"""How a customer buys: channel mix and breadth over the trailing 28 days, per customer per day."""

import inspect
from datetime import timedelta

from feast import Field
from feast.batch_feature_view import BatchFeatureView
from feast.types import Float64, Int64

from entities import customer
from sources import events, offline_table


def customer_channel_features(events, feature_dates):
    """events: raw events (customer_id, event_date, channel, category, ...); feature_dates: feature_date."""
    from pyspark.sql import functions as F

    window = feature_dates.join(
        events,
        (events.event_date > F.date_sub(feature_dates.feature_date, 28))
        & (events.event_date <= feature_dates.feature_date),
    )
    return window.groupBy("customer_id", "feature_date").agg(
        F.avg((F.col("channel") == "app").cast("double")).alias("app_share_28d"),
        F.avg((F.col("channel") == "store").cast("double")).alias("store_share_28d"),
        F.countDistinct("category").cast("bigint").alias("categories_28d"),
        F.datediff(F.first("feature_date"), F.max("event_date")).cast("bigint").alias("days_since_last_order"),
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
