"""When the local Airflow counts as up: the api-server answers and reports a healthy scheduler, dag
processor and triggerer, with heartbeats from the processes this ``up`` started."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx

from mlfleet.devstack.environment import logs_dir
from mlfleet.devstack.polling import poll_until
from mlfleet.devstack.processes import COMPONENTS, component_log, log_tail, status

if TYPE_CHECKING:
    from mlfleet.config import Settings

HEALTH_PATH = "/api/v2/monitor/health"
# The task execution API builds its versioned routes on its first request, seconds paid by the
# first task of the stack's first run (docs/design-figures.md, "Why the settings"). `up` pays it instead.
EXECUTION_HEALTH_PATH = "/execution/health"
# Keys in GET /api/v2/monitor/health that ``up`` waits for (the api-server answering is implied).
# The triggerer counts: a deferred batch (SageMaker, Kubernetes) resumes only once one is running.
HEALTH_KEYS: dict[str, str] = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


def _heartbeat_after(value: Any, since: datetime) -> bool:
    if not isinstance(value, str):
        return False
    try:
        beat = datetime.fromisoformat(value)
    except ValueError:
        return False
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=timezone.utc)
    return beat >= since


def healthy(health: Any, started: dict[str, datetime]) -> bool:
    """Scheduler, dag processor and triggerer healthy, each with a heartbeat from the process we
    just started.

    The heartbeat check matters after a crash: a killed scheduler's or triggerer's job row still
    looks alive for `*_health_check_threshold` seconds. ``health`` is the endpoint's JSON body.
    """
    if not isinstance(health, dict):
        return False
    for component, key in HEALTH_KEYS.items():
        entry = health.get(key) or {}
        if entry.get("status") != "healthy":
            return False
        since = started.get(component)
        if since and not _heartbeat_after(entry.get(f"latest_{key}_heartbeat"), since):
            return False
    return True


def wait_healthy(
    settings: Settings, url: str, started: dict[str, datetime], *, wait_seconds: float
) -> None:
    """Wait until ``healthy``; a component that exits meanwhile fails at once, with its log tail."""

    def probe(client: httpx.Client) -> Any:
        running = status(settings)
        for component in COMPONENTS:
            if not running[component]:
                log = component_log(settings, component)
                raise RuntimeError(
                    f"Airflow {component} exited during startup; see {log}:\n{log_tail(log)}"
                )
        try:
            resp = client.get(HEALTH_PATH)
            return resp.json() if resp.status_code == 200 else f"HTTP {resp.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            return repr(exc)

    def not_healthy(last: Any) -> TimeoutError:
        return TimeoutError(
            f"Airflow at {url} not healthy after {wait_seconds:.0f} s; last health: {last}. "
            f"Logs in {logs_dir(settings)}"
        )

    with httpx.Client(base_url=url, timeout=5.0) as client:
        poll_until(
            lambda: probe(client),
            done=lambda health: healthy(health, started),
            timeout=wait_seconds,
            timed_out=not_healthy,
        )
        warm_execution_api(client)


def warm_execution_api(client: httpx.Client) -> None:
    """One request to the task execution API, so the first task does not wait for its set-up."""
    try:
        client.get(EXECUTION_HEALTH_PATH, timeout=60.0)
    except httpx.HTTPError:
        pass  # a warm-up only: the first task pays the set-up instead
