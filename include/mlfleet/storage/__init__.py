"""How mlfleet writes, names and addresses bytes: atomic writes, content hashes, object-store URIs,
and the path objects (local or object store) that sweep state is read and written through.

Standard library only (pandas only inside the functions that take a frame), so the training
entrypoint in the trial image and every layer above it share one implementation of each.
"""

from mlfleet.storage.atomic import (
    write_bytes_atomic,
    write_json_atomic,
    write_json_once,
    write_private_atomic,
    write_text_atomic,
    write_with,
)
from mlfleet.storage.hashing import bytes_sha256, file_sha256, short_digest
from mlfleet.storage.private import keep_private, private_dir
from mlfleet.storage.locations import (
    Location,
    as_path,
    display,
    forget_listings,
    is_object_path,
    parquet_bytes,
    read_parquet,
    uri_of,
)
from mlfleet.storage.uris import is_remote, split_s3_uri

__all__ = [
    "Location",
    "as_path",
    "bytes_sha256",
    "display",
    "file_sha256",
    "forget_listings",
    "is_object_path",
    "is_remote",
    "keep_private",
    "parquet_bytes",
    "private_dir",
    "read_parquet",
    "short_digest",
    "split_s3_uri",
    "uri_of",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_json_once",
    "write_private_atomic",
    "write_text_atomic",
    "write_with",
]
