"""The machine a benchmark ran on: figures only mean something next to the hardware that made them."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_commit(root: Path) -> str:
    """Short hash of HEAD, marked when the working tree has uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    return f"{head} (+ uncommitted changes)" if dirty else head


def machine_info(*, root: Path) -> dict[str, Any]:
    """Platform, CPU, cores, RAM, Python, UTC time and git commit, as label -> value."""
    return {
        "Date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "Platform": platform.platform(),
        "CPU": _cpu_model(),
        "Cores (os.cpu_count)": str(os.cpu_count()),
        "RAM": _ram_gib(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Git commit": _git_commit(root),
    }
