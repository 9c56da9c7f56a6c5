"""`mlfleet up` for real: start the local Airflow, drive it as an outside REST client, stop it.

The DAG here is a throwaway `smoke_rest` written into a tmp dags folder, because the project's
real DAGs (dags/) are still being written and may not parse yet. Once `experiment_sweep` exists,
the team will switch this test to trigger it instead (same flow: wait for parse, unpause,
trigger with conf, wait, check task instances and XCom).
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from mlfleet import airflow_local
from mlfleet.config import Settings, get_settings

pytestmark = pytest.mark.slow

DAG_ID = "smoke_rest"
TASK_ID = "double"

SMOKE_DAG = textwrap.dedent(
    f'''
    """Smoke DAG for tests/integration/test_airflow_up_rest.py."""
    from airflow.sdk import dag, get_current_context, task


    @dag(dag_id="{DAG_ID}", schedule=None, catchup=False, tags=["mlfleet-test"])
    def smoke_rest():
        @task(task_id="{TASK_ID}")
        def double():
            return get_current_context()["dag_run"].conf["x"] * 2

        double()


    smoke_rest()
    '''
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "mlfleet"))
    monkeypatch.setenv("MLFLEET_AIRFLOW_PORT", str(_free_port()))
    return get_settings()


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / f"{DAG_ID}.py").write_text(SMOKE_DAG)
    return folder


def test_up_trigger_over_rest_down(local_settings: Settings, dags_folder: Path) -> None:
    pids: dict[str, int | None] = {}
    try:
        t0 = time.monotonic()
        info = airflow_local.up(local_settings, wait_seconds=90, dags_folder=dags_folder)
        print(f"up() healthy after {time.monotonic() - t0:.1f} s")
        pids = info["pids"]
        assert info["url"] == f"http://127.0.0.1:{local_settings.airflow_port}"
        assert all(airflow_local.status(local_settings).values())
        # A second `up` finds everything running and starts nothing.
        assert airflow_local.up(local_settings, dags_folder=dags_folder)["started"] == []

        token = airflow_local.api_token(info["url"], info["username"], info["password"])
        with airflow_local.ApiClient(info["url"], token) as api:
            dag = api.wait_for_dag(DAG_ID, timeout=60)
            assert dag["is_paused"] is True  # paused at creation, by design
            api.unpause(DAG_ID)
            run = api.trigger(DAG_ID, {"x": 21})
            run_id = run["dag_run_id"]
            state = api.wait_for_run(DAG_ID, run_id, timeout=60)
            tis = api.task_instances(DAG_ID, run_id)
            assert state == "success", tis
            assert [(ti["task_id"], ti["state"]) for ti in tis] == [(TASK_ID, "success")]
            assert api.xcom(DAG_ID, run_id, TASK_ID) == 42
        print(f"up + run took {time.monotonic() - t0:.1f} s")
    finally:
        stopped = airflow_local.down(local_settings)
    assert set(stopped) == set(airflow_local.COMPONENTS)
    assert not any(airflow_local.status(local_settings).values())
    for component, pid in pids.items():
        assert pid is not None and _group_gone(pid), f"{component} (pgid {pid}) still running"
    assert airflow_local.down(local_settings) == []  # idempotent


def test_up_refuses_a_port_taken_by_another_program(local_settings: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", local_settings.airflow_port))
        squatter.listen()
        with pytest.raises(RuntimeError, match=rf"{local_settings.airflow_port}.*MLFLEET_AIRFLOW_PORT"):
            airflow_local.up(local_settings, wait_seconds=5)
    assert not any(airflow_local.status(local_settings).values())
