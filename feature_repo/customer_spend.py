"""Spend and order counts over the trailing 7 and 28 days, per customer per day.

A feature view is one file: a Feast BatchFeatureView whose transformation turns the raw
`events` view into one row per (customer_id, feature_date). The ETL runs the transformation
on Spark for each day of a DAG run's interval; keep every import inside the function (Feast
stores its source text in the registry and rebuilds it there).
"""

import inspect
from datetime import timedelta

from feast import Field
from feast.batch_feature_view import BatchFeatureView
from feast.types import Float64, Int64

from entities import customer
from sources import events, offline_table


def customer_spend_features(events, feature_dates):
    """events: raw events (customer_id, event_date, amount, ...); feature_dates: feature_date."""
    from pyspark.sql import functions as F

    joined = feature_dates.join(
        events,
        (events.event_date > F.date_sub(feature_dates.feature_date, 28))
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


customer_spend = BatchFeatureView(
    name="customer_spend",
    mode="python",
    udf=customer_spend_features,
    udf_string=inspect.getsource(customer_spend_features),
    source=[events],
    sink_source=offline_table("customer_spend"),
    entities=[customer],
    ttl=timedelta(days=3),
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="spend_7d", dtype=Float64),
        Field(name="spend_28d", dtype=Float64),
        Field(name="orders_7d", dtype=Int64),
        Field(name="orders_28d", dtype=Int64),
        Field(name="avg_amount_28d", dtype=Float64),
    ],
    online=True,
    offline=True,
    tags={"team": "growth", "lookback_days": "28"},
    owner="data-eng@mlfleet.dev",
)
