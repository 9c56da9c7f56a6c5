"""Test session: all state (MLFLEET_HOME, AIRFLOW_HOME) under one temp dir, set before Airflow loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlfleet-tests-"))
VENV_BIN = str(Path(sys.executable).parent)

os.environ.update(
    {
        "MLFLEET_HOME": str(SESSION_DIR / "home"),
        "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow' / 'airflow.db'}",
        "AIRFLOW_CONN_SPARK_LOCAL": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "include"), os.environ.get("PYTHONPATH")])),
        "MLFLEET_LOCAL_WORKERS": "2",
        # Tests write their datasets under the temp dir (pytest's tmp_path); the data-root rule itself
        # is tested with roots of its own (tests/unit/spec/test_hostile_input.py).
        "MLFLEET_DATA_ROOTS": os.pathsep.join([tempfile.gettempdir(), str(ROOT)]),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB for `dag.test()` (the real one, SQLite)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    return SESSION_DIR / "airflow"


@pytest.fixture
def mlfleet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLFLEET_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLFLEET_HOME", str(home))
    return home


@pytest.fixture
def restore_environment() -> Iterator[None]:
    """For code that exports settings to os.environ itself (Feast's paths, the AWS connection)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def settings(mlfleet_home: Path):
    from mlfleet.config import get_settings

    return get_settings()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first, each file's tests kept together and in order.

    `make test` hands whole files to its workers in collection order (`--dist loadfile
    --no-loadscope-reorder`), so a slow file collected late runs alone at the end while the other
    worker idles (a 353 s e2e file then a 109 s one, one after the other, in a CI run of 2026-12-02).
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order inside a file is kept
