"""Atomic writes: a temp file beside the target, then a rename, so a reader or a retried task
never sees half a file, and two writers of the same path never share a temp name."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


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


def write_with(path: Path, writer: Callable[[Path], Any]) -> Path:
    """Atomic for any writer that takes a path (pandas, pyarrow, a zip file)."""
    path = Path(path)
    with _temp_beside(path) as tmp:
        writer(tmp)
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def write_json_atomic(path: Path, data: Any) -> Path:
    """JSON with one-space indent; values JSON cannot hold (dates, paths) are written as strings."""
    return write_text_atomic(path, json.dumps(data, indent=1, default=str))


def write_parquet_atomic(frame: Any, path: Path) -> Path:
    return write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
