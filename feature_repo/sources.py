"""Raw data the feature views transform: the date-partitioned event stream.

`events` is the base view every derived feature view reads. It is offline-only (never
materialized); its rows are the raw events the ETL hands to each view's Spark SQL.
"""

import os
from datetime import timedelta

from feast import FeatureView, Field, FileSource
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.types import Float64, String

from entities import customer

# A local directory or an s3:// prefix (mlfleet exports it; see feature_store.yaml).
ROOT = os.environ.get("MLFLEET_FEATURE_ROOT") or os.environ.get("MLFLEET_HOME") or os.path.abspath(".mlfleet")
OFFLINE = f"{ROOT.rstrip('/')}/offline"
# The offline store training sets are read through (mlfleet exports it; see feature_store*.yaml).
OFFLINE_STORE = os.environ.get("MLFLEET_FEAST_OFFLINE_STORE", "duckdb")

raw_events = FileSource(
    name="raw_events",
    path=f"{ROOT.rstrip('/')}/raw/events",
    timestamp_field="event_timestamp",
    description="Raw purchase events, one Parquet partition per event_date.",
)

events = FeatureView(
    name="events",
    entities=[customer],
    ttl=timedelta(days=1),
    schema=[Field(name="amount", dtype=Float64), Field(name="category", dtype=String),
            Field(name="channel", dtype=String)],
    source=raw_events,
    online=False,
    tags={"mlfleet.role": "raw"},
)


def offline_table(name: str) -> DataSource:
    """Where the ETL writes a view's daily partitions (`feature_date=YYYY-MM-DD`).

    The same directory either way: Feast's Spark offline store reads only SparkSources, its DuckDB
    and dask stores only FileSources (with the format declared: the DuckDB store reads no other).
    `feature_date` is not declared as the date partition: a day's rows are stamped at the next
    midnight, so pruning partitions by timestamp date would drop the rows at the TTL's edge.
    """
    path = f"{OFFLINE}/{name}"
    if OFFLINE_STORE == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        return SparkSource(name=f"{name}_table", path=path, file_format="parquet", timestamp_field="event_timestamp")
    return FileSource(name=f"{name}_table", path=path, timestamp_field="event_timestamp", file_format=ParquetFormat())
