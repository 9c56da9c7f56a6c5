"""The Airflow AWS connection as the environment variables boto3, s3fs and pyarrow read.

Feast's S3 registry and offline store, and pandas, take credentials and the S3 endpoint from the
process environment, not from an Airflow connection: exporting the connection there lets one
connection (`MLFLEET_AWS_CONN_ID`) serve the operators and Feast alike.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from mlfleet.config import Settings

# What `aws_environment` gives a value for ("" where the connection has none, to be cleared).
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                 "AWS_ENDPOINT_URL_S3", "FEAST_S3_ENDPOINT_URL")


def aws_environment(settings: Settings) -> dict[str, str]:
    """The AWS connection as the variables boto3, s3fs and pyarrow read ("" where it has none)."""
    hook = S3Hook(aws_conn_id=settings.aws_conn_id, region_name=settings.aws_region)
    credentials = hook.get_credentials()
    endpoint = hook.conn_config.get_service_endpoint_url("s3") or ""
    values = [credentials.access_key, credentials.secret_key, credentials.token or "", hook.conn_region_name or "",
              # Feast's S3 registry passes FEAST_S3_ENDPOINT_URL to boto3; the others read AWS_ENDPOINT_URL_S3.
              endpoint, endpoint]
    return dict(zip(AWS_VARIABLES, values, strict=True))
