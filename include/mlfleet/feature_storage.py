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

# What `connect` sets from the AWS connection (and clears where the connection has no value).
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL_S3", "FEAST_S3_ENDPOINT_URL")


def is_remote(uri: str) -> bool:
    return uri.startswith("s3://")


def connect(settings: Settings) -> None:
    """Make the feature root reachable from this process before Feast or pandas touches it."""
    export_feature_env(settings)
    if not is_remote(settings.feature_root):
        return
    for name, value in aws_environment(settings).items():
        if value:
            os.environ[name] = value
        else:  # not in this connection: a value left by an earlier task must not linger
            os.environ.pop(name, None)
    import fsspec

    # Tables change under a long-lived process (a notebook, `dag.test`): list S3 afresh each read.
    fsspec.config.conf.setdefault("s3", {})["use_listings_cache"] = False


def aws_environment(settings: Settings) -> dict[str, str]:
    """The AWS connection as the variables boto3, s3fs and pyarrow read ("" where it has none)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=settings.aws_conn_id, region_name=settings.aws_region)
    credentials = hook.get_credentials()
    endpoint = hook.conn_config.get_service_endpoint_url("s3") or ""
    values = [credentials.access_key, credentials.secret_key, credentials.token or "", hook.conn_region_name or "",
              # Feast's S3 registry passes FEAST_S3_ENDPOINT_URL to boto3; the others read AWS_ENDPOINT_URL_S3.
              endpoint, endpoint]
    return dict(zip(AWS_VARIABLES, values, strict=True))


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
