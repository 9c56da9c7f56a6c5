"""The object store remote backends read and write (S3 through the Amazon provider's S3Hook),
and where sweep state lives when workers share no disk (Airflow's ObjectStoragePath over s3fs).

Uploads are idempotent: a content-addressed key that already exists is not sent again, and a
batch's config is rewritten with the same bytes on a retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.storage import Location, as_path, is_object_path, is_remote, split_s3_uri


def require_root(settings: Settings, who: str, *, field: str = "backend") -> str:
    """The configured object-store root, or an error that names the setting (every remote backend needs one)."""
    from mlfleet.spec import SpecError

    if not settings.object_store_uri:
        raise SpecError(field, f"{who} needs an object store: set MLFLEET_OBJECT_STORE_URI=s3://bucket/prefix")
    return settings.object_store_uri


def location(where: str | Path | Location, *, conn_id: str | None = None) -> Location:
    """A path object for `where`: an ObjectStoragePath for s3:// (read and written with the Airflow
    connection `conn_id`), else a local Path; a path object is returned as it is."""
    if is_remote(str(where)) and not is_object_path(where):
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(str(where), conn_id=conn_id)
    return as_path(where)


def state_root(settings: Settings, folder: str) -> Location:
    """Where a kind of state lives (`experiments`, `drift`, `decisions`): `<home>/<folder>`, or
    `<object store>/<folder>` with sweep_state=object_store, so that workers share no disk."""
    if settings.sweep_state == "home":
        return settings.home_dir / folder
    return location(f"{settings.require_object_store('sweep_state')}/{folder}", conn_id=settings.aws_conn_id)


def s3_hook(settings: Settings) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings.aws_conn_id, region_name=settings.aws_region)


def upload_once(settings: Settings, path: Path, uri: str) -> bool:
    """Upload the file `path` (small: code, a repo zip) to a content-addressed `uri` unless it is there already."""
    return put_bytes_once(settings, Path(path).read_bytes(), uri)


def put_bytes_once(settings: Settings, data: bytes, uri: str) -> bool:
    """`put_bytes` to a content-addressed `uri` unless it is there already; True when sent."""
    hook = s3_hook(settings)
    bucket, key = split_s3_uri(uri)
    if hook.check_for_key(key, bucket_name=bucket):
        return False
    hook.load_bytes(data, key, bucket_name=bucket, replace=True)
    return True


def put_bytes(settings: Settings, data: bytes, uri: str) -> str:
    bucket, key = split_s3_uri(uri)
    s3_hook(settings).load_bytes(data, key, bucket_name=bucket, replace=True)
    return uri

