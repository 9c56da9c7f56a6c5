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
    return write_text_atomic(path, _json(data))


def write_private_atomic(path: Any, text: str) -> Any:
    """A secret only this user may read (mode 0600, set before the rename, so it is never readable
    by others, not even for a moment). In the object store the bucket's policy decides who reads it."""
    if is_object_path(path):
        return write_text_atomic(path, text)
    path = Path(path)
    with _temp_beside(path) as tmp:
        tmp.chmod(0o600)
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json_once(path: Any, data: Any) -> bool:
    """Create `path` with `data` unless it exists; True when this call created it.

    Locally the name is taken by a hard link to a complete temp file, which fails when the name
    exists: of two writers racing for one name exactly one wins, and a reader never sees half of
    it. In the object store it is fsspec's exclusive-create mode ("xb"), which s3fs sends as a
    conditional PUT (`If-None-Match: *`): S3 refuses it when the key exists, so there too exactly
    one writer wins. A store whose filesystem has no exclusive create fails here with the error it
    gives, rather than quietly checking and then writing.
    """
    text = _json(data)
    if is_object_path(path):
        try:
            with path.open("xb") as handle:
                handle.write(text.encode("utf-8"))
        except FileExistsError:
            return False
        return True
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(name, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(name)
    return True


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, default=str)
