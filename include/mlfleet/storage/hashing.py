"""Content hashes: what content-addresses uploads and fingerprints a training set."""

from __future__ import annotations

import hashlib
from pathlib import Path


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def short_digest(text: str, length: int) -> str:
    """The first `length` hex digits of the SHA-256 of `text`: for ids and names that must be stable."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
