"""The waits of the devstack (tenacity underneath): they return when ready and time out with the
last state they saw. The REST waits run against a real HTTP server on loopback."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlfleet.config import Settings
from mlfleet.devstack import health, processes
from mlfleet.devstack.polling import poll_until
from mlfleet.devstack.rest_client import ApiClient

Routes = dict[str, tuple[int, Any]]
STARTED = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def _health(
    status: str = "healthy", beat: datetime = STARTED + timedelta(seconds=3)
) -> dict[str, Any]:
    return {
        "metadatabase": {"status": "healthy"},
        "scheduler": {"status": status, "latest_scheduler_heartbeat": beat.isoformat()},
        "dag_processor": {"status": status, "latest_dag_processor_heartbeat": beat.isoformat()},
        "triggerer": {"status": status, "latest_triggerer_heartbeat": beat.isoformat()},
    }


def test_poll_until_returns_the_first_accepted_result() -> None:
    results = iter([None, "queued", "running", "success"])
    calls: list[Any] = []

    def probe() -> Any:
        calls.append(next(results))
        return calls[-1]

    got = poll_until(
        probe, done=lambda s: s == "success", timeout=5, timed_out=RuntimeError, interval=0.01
    )
    assert got == "success" and len(calls) == 4


def test_poll_until_times_out_with_the_last_result_and_does_not_retry_errors() -> None:
    with pytest.raises(TimeoutError, match="last: 'queued'"):
        poll_until(
            lambda: "queued",
            done=lambda s: s == "success",
            timeout=0.05,
            timed_out=lambda last: TimeoutError(f"last: {last!r}"),
            interval=0.01,
        )
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad answer")

    with pytest.raises(ValueError, match="bad answer"):
        poll_until(broken, done=lambda _: True, timeout=5, timed_out=RuntimeError, interval=0.01)
    assert calls == [1]


def test_healthy_wants_every_component_with_a_heartbeat_from_this_start() -> None:
    started = {"scheduler": STARTED, "dag-processor": STARTED}
    assert health.healthy(_health(), started)
    assert health.healthy(_health(beat=STARTED - timedelta(minutes=5)), {})  # nothing restarted
    assert not health.healthy(_health(beat=STARTED - timedelta(seconds=1)), started)  # stale row
    assert not health.healthy(_health(status="unhealthy"), started)
    assert not health.healthy({"scheduler": {"status": "healthy"}}, {})
    assert not health.healthy("HTTP 503", {})
    # A restarted triggerer counts only once the new one has beaten: the killed one's row looks alive for 30 s.
    stale_triggerer = {**_health(), "triggerer": {"status": "healthy",
                                                  "latest_triggerer_heartbeat": (STARTED - timedelta(seconds=2)).isoformat()}}
    assert health.healthy(stale_triggerer, started)
    assert not health.healthy(stale_triggerer, {"triggerer": STARTED})
    assert not health.healthy({k: v for k, v in _health().items() if k != "triggerer"}, {})


class _Api(BaseHTTPRequestHandler):
    routes: Routes = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        code, body = self.routes.get(self.path.split("?")[0], (404, {"detail": "not found"}))
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[tuple[str, Routes]]:
    """A loopback HTTP server answering GETs from a path -> (status, JSON body) table."""
    routes: Routes = {}
    handler = type("Api", (_Api,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()
    thread.join()


def test_wait_for_dag_names_the_import_errors_when_it_never_appears(
    api_server: tuple[str, Routes],
) -> None:
    url, routes = api_server
    routes["/api/v2/importErrors"] = (200, {"import_errors": [{"filename": "dags/broken.py"}]})
    with ApiClient(url, "token") as api, pytest.raises(TimeoutError) as exc:
        api.wait_for_dag("experiment_sweep", timeout=0)
    assert "'experiment_sweep' not parsed after 0 s" in str(exc.value)
    assert "dags/broken.py" in str(exc.value)

    dag = {"dag_id": "experiment_sweep", "is_stale": False}
    routes["/api/v2/dags/experiment_sweep"] = (200, dag)
    with ApiClient(url, "token") as api:
        assert api.wait_for_dag("experiment_sweep", timeout=0)["dag_id"] == "experiment_sweep"


def test_wait_for_run_returns_the_final_state_or_names_the_last_one(
    api_server: tuple[str, Routes],
) -> None:
    url, routes = api_server
    path = "/api/v2/dags/d/dagRuns/r1"
    routes[path] = (200, {"state": "running"})
    with ApiClient(url, "token") as api:
        with pytest.raises(TimeoutError, match=r"run d/r1 still 'running' after 0 s"):
            api.wait_for_run("d", "r1", timeout=0)
        routes[path] = (200, {"state": "failed"})
        assert api.wait_for_run("d", "r1", timeout=0) == "failed"


def test_wait_healthy_fails_at_once_when_a_component_is_not_running(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="Airflow api-server exited during startup"):
        health.wait_healthy(settings, "http://127.0.0.1:9", {}, wait_seconds=60)


def test_wait_healthy_times_out_with_the_last_health(
    settings: Settings, api_server: tuple[str, Routes]
) -> None:
    url, routes = api_server
    routes[health.HEALTH_PATH] = (200, _health(status="unhealthy"))
    pids = {}
    for component in processes.COMPONENTS:  # stand-ins that `status` takes for components
        pids[component] = processes.spawn_group(
            [sys.executable, "-c", "import time; time.sleep(60)", "airflow-stand-in"],
            log_file=processes.component_log(settings, component),
            env=os.environ,
            cwd=settings.home_dir,
        )
        processes.pid_file(settings, component).parent.mkdir(parents=True, exist_ok=True)
        processes.pid_file(settings, component).write_text(f"{pids[component]}\n")
    try:
        with pytest.raises(TimeoutError, match=r"not healthy after 0 s; last health: .*unhealthy"):
            health.wait_healthy(settings, url, {}, wait_seconds=0)
        routes[health.HEALTH_PATH] = (200, _health())
        health.wait_healthy(settings, url, {}, wait_seconds=0)
    finally:
        assert sorted(processes.stop(settings, processes.COMPONENTS, timeout=5)) == sorted(
            processes.COMPONENTS
        )
