"""Secrets and the state folder are their owner's alone: 0600 files, a 0700 folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlfleet.storage import keep_private, private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_creates_the_folder_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        home = private_dir(tmp_path / "parent" / "home")
    finally:
        os.umask(old)
    assert home.is_dir() and _mode(home) == 0o700
    # An existing folder is its owner's choice: left as it is.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    assert private_dir(shared) == shared and _mode(shared) == 0o755


def test_keep_private_takes_group_and_other_bits_off(tmp_path: Path) -> None:
    path = tmp_path / "passwords.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    keep_private(path)
    assert _mode(path) == 0o600
    keep_private(tmp_path / "missing.json")  # nothing to do
