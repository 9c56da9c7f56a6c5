"""S3 in and out for the trial entrypoint when it runs in a pod (SageMaker copies channels itself).

boto3 only, no Airflow: this runs in the trial image. Credentials and the endpoint come from the
pod's environment (IRSA on EKS sets them; `AWS_ENDPOINT_URL` points at an emulator in tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfleet.storage import split_s3_uri


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def download_prefix(uri: str, dest: Path) -> list[Path]:
    """Copy every object under `uri` (a prefix, or one key) into `dest`, keeping relative paths."""
    bucket, prefix = split_s3_uri(uri)
    client = _client()
    paths = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):
                continue
            relative = key[len(prefix):].lstrip("/") or Path(key).name
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))
            paths.append(target)
    return paths


def upload_file(path: Path, uri: str) -> str:
    bucket, key = split_s3_uri(uri)
    _client().upload_file(str(path), bucket, key)
    return uri
