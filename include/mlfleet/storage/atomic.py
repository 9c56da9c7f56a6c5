"""Atomic writes: a temp file beside the target, then a rename, so a reader or a retried task
never sees half a file, and two writers of the same path never share a temp name.

A target in the object store is written with one PUT, which S3 makes visible whole or not at
all: the same guarantee, without a rename (an object store has none).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from mlfleet.storage.locations import is_object_path


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A unique temp path beside `path`, renamed onto it only if the body succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_with(path: Any, writer: Callable[[Path], Any]) -> Any:
    """Atomic for any writer that takes a local path (pandas, pyarrow, a zip file)."""
    if is_object_path(path):
        with tempfile.TemporaryDirectory(prefix="mlfleet-put-") as scratch:
            tmp = Path(scratch) / path.name
            writer(tmp)
            return write_bytes_atomic(path, tmp.read_bytes())
    path = Path(path)
    with _temp_beside(path) as tmp:
        writer(tmp)
    return path


def write_bytes_atomic(path: Any, data: bytes) -> Any:
    """`path` is a local path or an object-store path (see mlfleet.storage.locations)."""
    if is_object_path(path):
        path.write_bytes(data)  # one PUT: the object appears whole, or not at all
        return path
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Any, text: str) -> Any:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Any, data: Any) -> Any:
    """JSON with one-space indent; values JSON cannot hold (dates, paths) are written as strings."""
    return write_text_atomic(path, json.dumps(data, indent=1, default=str))
