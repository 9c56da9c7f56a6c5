"""How mlfleet writes, names and addresses bytes: atomic writes, content hashes, object-store URIs.

Standard library only (pandas only inside the functions that take a frame), so the training
entrypoint in the trial image and every layer above it share one implementation of each.
"""

from mlfleet.storage.atomic import (
    write_bytes_atomic,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
    write_with,
)
from mlfleet.storage.hashing import bytes_sha256, file_sha256, short_digest
from mlfleet.storage.uris import is_remote, split_s3_uri

__all__ = [
    "bytes_sha256",
    "file_sha256",
    "is_remote",
    "short_digest",
    "split_s3_uri",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
    "write_with",
]
