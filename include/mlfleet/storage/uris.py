"""Object-store URIs (`s3://bucket/key`): the one place that parses them."""

from __future__ import annotations

S3_SCHEME = "s3://"


def is_remote(uri: str) -> bool:
    """True for an object-store URI, False for a local path."""
    return str(uri).startswith(S3_SCHEME)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); an error names a URI without a bucket."""
    if not is_remote(uri):
        raise ValueError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key
