"""Where sweep state lives: a local folder, or a prefix in the object store that every worker reaches.

Both are path objects with one interface: `pathlib.Path` for a local path, Airflow's
`ObjectStoragePath` (fsspec/s3fs, credentials from an Airflow connection) for `s3://`, which
`mlfleet.backends.object_store.location` opens (this layer imports no Airflow: the trial image
holds it). Code above joins, globs, reads and writes without asking which one it has; the local
case stays a plain `Path`, as fast as before.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from mlfleet.storage.uris import is_remote

# An ObjectStoragePath or a pathlib.Path: both join with `/`, glob, read and write bytes and text.
Location = Any


def as_path(where: str | os.PathLike[str] | Location) -> Location:
    """A path object for `where`: unchanged if it already is one, else a local Path."""
    if isinstance(where, Path) or is_object_path(where):
        return where
    if is_remote(str(where)):
        raise ValueError(f"{where!r}: open object-store URIs with mlfleet.backends.object_store.location")
    return Path(where)


def is_object_path(path: Any) -> bool:
    """True for a path in the object store (an ObjectStoragePath), False for a local `Path`."""
    return not isinstance(path, Path) and hasattr(path, "protocol") and hasattr(path, "fs")


def forget_listings(path: Any) -> None:
    """s3fs caches what it listed; a long-lived reader (the results UI) must see new files. No-op locally."""
    if is_object_path(path):
        path.fs.invalidate_cache()


def uri_of(path: Location) -> str:
    """What to show and record for a path: `s3://bucket/key` (no connection id in it), or a file URI."""
    if is_object_path(path):
        return str(path.as_uri())
    return Path(path).resolve().as_uri()


def display(path: Location) -> str:
    """The path as people read it: `s3://bucket/key`, or the local path."""
    return str(path.as_uri()) if is_object_path(path) else str(path)


def read_parquet(path: Location, **kwargs: Any) -> Any:
    """A Parquet file as a frame, from local disk or the object store (one GET, read in memory)."""
    import pandas as pd

    if is_object_path(path):
        return pd.read_parquet(io.BytesIO(path.read_bytes()), **kwargs)
    return pd.read_parquet(path, **kwargs)


def parquet_bytes(frame: Any) -> bytes:
    """A frame as Parquet bytes: hashed and written once, to whichever store the sweep uses."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
