"""Where the feature data lives, and how Feast and pandas reach it there.

The feature root (`Settings.feature_root`) holds the raw events, the offline tables, the labels
and the Feast registry: MLFLEET_HOME locally, the S3 object store when the ETL runs on EMR
Serverless. Feast's S3 clients (boto3 for the registry, s3fs for the dask offline store, pyarrow
for schemas) and pandas all read the standard AWS environment, so `connect` exports the Airflow
connection's credentials, region and S3 endpoint there: one connection (`MLFLEET_AWS_CONN_ID`)
serves the operators and Feast alike.
"""

from __future__ import annotations

import os
from typing import Any

from mlfleet.config import Settings, export_feature_env
from mlfleet.storage import is_remote


def connect(settings: Settings) -> None:
    """Make the feature root reachable from this process before Feast or pandas touches it."""
    export_feature_env(settings)
    if not is_remote(settings.feature_root):
        return
    from mlfleet.backends.aws_environment import aws_environment

    for name, value in aws_environment(settings).items():
        if value:
            os.environ[name] = value
        else:  # not in this connection: a value left by an earlier task must not linger
            os.environ.pop(name, None)
    import fsspec

    # Tables change under a long-lived process (a notebook, `dag.test`): list S3 afresh each read.
    fsspec.config.conf.setdefault("s3", {})["use_listings_cache"] = False


def parquet_files(uri: str) -> list[str]:
    """The Parquet files under a table's root (none when it does not exist)."""
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(uri)
    if not fs.isdir(path):
        return []
    return sorted(name for name in fs.find(path) if name.endswith(".parquet"))


def read_parquet(uri: str, *, columns: list[str] | None = None, filters: list[Any] | None = None) -> Any:
    """A hive-partitioned Parquet table, local or on S3, as one pandas frame."""
    import pandas as pd

    return pd.read_parquet(uri, columns=columns, filters=filters)
