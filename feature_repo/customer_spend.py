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
    """events: raw events (customer_id, event_date, amount, ...); feature_dates: feature_date.

    Events are first summed per customer and day, and only those daily rows are joined to the
    feature dates of their window: a customer-day is joined 28 times, not each of its events.
    The interval's days are few, so they are broadcast (without the hint Spark has no size for
    them and plans a cartesian product). Non-null amounts are counted beside the sums so the
    average stays avg(amount).
    """
    from pyspark.sql import functions as F

    daily = events.groupBy("customer_id", "event_date").agg(
        F.sum("amount").alias("spend"),
        F.count("amount").alias("amounts"),
        F.count("*").alias("orders"),
    )
    dates = F.broadcast(feature_dates)
    window = dates.join(
        daily,
        (daily.event_date > F.date_sub(dates.feature_date, 28)) & (daily.event_date <= dates.feature_date),
    )
    last_7d = window.event_date > F.date_sub(window.feature_date, 7)
    return window.groupBy("customer_id", "feature_date").agg(
        F.sum(F.when(last_7d, F.col("spend")).otherwise(0.0)).alias("spend_7d"),
        F.sum("spend").alias("spend_28d"),
        F.sum(F.when(last_7d, F.col("orders")).otherwise(0)).cast("bigint").alias("orders_7d"),
        F.sum("orders").cast("bigint").alias("orders_28d"),
        F.try_divide(F.sum("spend"), F.sum("amounts")).cast("double").alias("avg_amount_28d"),
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
