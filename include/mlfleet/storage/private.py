"""Files and folders only their owner may read: the secrets and the state folder that holds them.

Secrets are written by `write_private_atomic` (mlfleet.storage.atomic): 0600 from the first byte.
Here: keeping an existing secret file private, and creating a state folder as 0700.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700


def keep_private(path: Path) -> None:
    """Take group and other permissions off an existing secret file that mlfleet did not write
    (Airflow's SimpleAuthManager creates its password file with the umask's mode, 0644 by default)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with the folder itself 0700; an existing folder keeps
    the permissions its owner gave it."""
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process: theirs to set
            return path
        os.chmod(path, PRIVATE_DIR)  # mkdir's mode passes through the umask
    return path
