"""Atomic writes, content hashes and object-store URIs: the one implementation of each."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from mlfleet.storage import (
    bytes_sha256,
    file_sha256,
    is_remote,
    parquet_bytes,
    read_parquet,
    short_digest,
    split_s3_uri,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
    write_with,
)


def test_json_lands_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "deep" / "a.json", {"when": Path("/x"), "n": 1})
    assert json.loads(path.read_text()) == {"when": "/x", "n": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_failing_writer_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "a.txt", "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_with(path, broken)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_concurrent_writers_of_one_path_never_share_a_temp_name(tmp_path: Path) -> None:
    path = tmp_path / "board.json"
    payloads = [{"writer": i, "rows": list(range(2000))} for i in range(8)]
    threads = [threading.Thread(target=write_json_atomic, args=(path, p)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert json.loads(path.read_text()) in payloads  # one whole payload, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["board.json"]


def test_bytes_text_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    assert write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_text_atomic(tmp_path / "t.csv", "a\r\nb\n").read_bytes() == b"a\r\nb\n"  # newlines as given
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    path = write_bytes_atomic(tmp_path / "f.parquet", parquet_bytes(frame))
    pd.testing.assert_frame_equal(read_parquet(path), frame)


def test_hashes(tmp_path: Path) -> None:
    data = b"mlfleet" * 400_000  # over one read block
    (tmp_path / "d").write_bytes(data)
    assert file_sha256(tmp_path / "d") == bytes_sha256(data) == hashlib.sha256(data).hexdigest()
    assert short_digest("abc", 8) == hashlib.sha256(b"abc").hexdigest()[:8]
    assert short_digest("abc", 8) != short_digest("abd", 8)


@pytest.mark.parametrize("uri,parts", [
    ("s3://bucket/a/b.parquet", ("bucket", "a/b.parquet")),
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/", ("bucket", "")),
])
def test_split_s3_uri(uri: str, parts: tuple[str, str]) -> None:
    assert is_remote(uri)
    assert split_s3_uri(uri) == parts


@pytest.mark.parametrize("uri,words", [("/local/path", "expected an s3:// URI"), ("s3:///key", "no bucket")])
def test_split_s3_uri_names_a_bad_uri(uri: str, words: str) -> None:
    assert not is_remote("/local/path")
    with pytest.raises(ValueError, match=words):
        split_s3_uri(uri)


def test_a_private_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from mlfleet.storage import write_private_atomic

    path = write_private_atomic(tmp_path / "secret", "token")
    assert path.read_text() == "token" and path.stat().st_mode & 0o777 == 0o600
    write_private_atomic(path, "another")
    assert path.read_text() == "another" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_write_json_once_creates_a_file_once(tmp_path: Path) -> None:
    from mlfleet.storage import write_json_once

    path = tmp_path / "claims" / "001.claim"
    assert write_json_once(path, {"run": "a"}) is True
    assert write_json_once(path, {"run": "b"}) is False
    assert json.loads(path.read_text()) == {"run": "a"}
    assert [p.name for p in path.parent.iterdir()] == ["001.claim"]


def test_of_writers_racing_for_one_name_exactly_one_wins(tmp_path: Path) -> None:
    from mlfleet.storage import write_json_once

    path, won = tmp_path / "claim", []
    threads = [threading.Thread(target=lambda i=i: won.append(i) if write_json_once(path, {"writer": i}) else None)
               for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and json.loads(path.read_text()) == {"writer": won[0]}
    assert [p.name for p in tmp_path.iterdir()] == ["claim"]
