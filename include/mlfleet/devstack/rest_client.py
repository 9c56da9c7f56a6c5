"""A small client for Airflow 3's public REST API (httpx + a SimpleAuthManager token).

What the CLI, the demo and the tests need from outside the Airflow processes: log in, wait for a
DAG to be parsed, unpause, trigger with conf, wait for a run or a whole sweep, read task instances
and XComs.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime
from typing import Any, cast

import httpx
import tenacity

from mlfleet.devstack.polling import POLL_INTERVAL_S, poll_until

FINISHED_RUN_STATES = frozenset({"success", "failed"})
# How often a request the metadata DB refused with "database is locked" is sent in all, and how far apart.
LOCKED_ATTEMPTS = 4
LOCKED_WAIT_S = 1.0


def database_locked(resp: httpx.Response) -> bool:
    """Whether Airflow answered that its SQLite metadata DB stayed locked past the lock wait.

    `mlfleet up` keeps Airflow's metadata in SQLite, which takes one writer at a time. The
    api-server commits its audit-log row for a trigger (`action_logging`) on its event loop, so
    while one of its own threads holds the write lock waiting for that loop to commit, the
    audit row waits the full lock wait (5 s) and the request fails with HTTP 500 "Database error"
    (503 on some routes). The request's transaction never committed, so sending it again is safe.
    """
    if resp.status_code == 503:
        return True
    if resp.status_code != 500:
        return False
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return False
    return isinstance(detail, dict) and detail.get("reason") == "Database error"


def send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """``http.request``, sent again (LOCKED_ATTEMPTS in all, LOCKED_WAIT_S apart) while `database_locked` says so."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(LOCKED_ATTEMPTS),
        wait=tenacity.wait_fixed(LOCKED_WAIT_S),
        retry=tenacity.retry_if_result(database_locked),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    return retrying(http.request, method, url, **kwargs)


def api_token(url: str, username: str, password: str) -> str:
    """A JWT for the public API from SimpleAuthManager's `POST /auth/token`."""
    resp = httpx.post(
        f"{url.rstrip('/')}/auth/token",
        json={"username": username, "password": password},
        timeout=30.0,
    )
    resp.raise_for_status()
    return resp.json()["access_token"]


class ApiClient:
    """Minimal Airflow 3 REST client (httpx + bearer token): what the CLI and tests need.

    `apache-airflow-client` is not installed in this project, and these few calls do not justify it.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def login(cls, url: str, username: str, password: str) -> ApiClient:
        """Client authenticated with a fresh token."""
        return cls(url, api_token(url, username, password))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def page(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET a path outside the REST API (the results app under /mlfleet), with the same token."""
        return self._http.get(path, **kwargs)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = send(self._http, method, f"/api/v2{path}", **kwargs)
        if resp.is_error:
            raise RuntimeError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the API knows it, or None while the dag processor has not parsed it."""
        resp = self._http.get(f"/api/v2/dags/{dag_id}")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def import_errors(self) -> list[dict[str, Any]]:
        """DAG files that failed to parse (the usual reason a DAG never appears)."""
        return self._request("GET", "/importErrors", params={"limit": 100})["import_errors"]

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the dag processor has parsed ``dag_id`` and it is active."""

        def not_parsed(_: dict[str, Any] | None) -> TimeoutError:
            errors = [e.get("filename") for e in self.import_errors()]
            return TimeoutError(
                f"DAG {dag_id!r} not parsed after {timeout:.0f} s; import errors in: {errors}"
            )

        dag = poll_until(
            lambda: self.get_dag(dag_id),
            done=lambda dag: dag is not None and not dag.get("is_stale", False),
            timeout=timeout,
            timed_out=not_parsed,
        )
        return cast("dict[str, Any]", dag)  # `done` accepted it, so it is not None

    def unpause(self, dag_id: str) -> dict[str, Any]:
        """Unpause: DAGs are created paused, and runs of a paused DAG never start."""
        return self._request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any],
        *,
        logical_date: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Create a manual run; returns the DAG run (``dag_run_id`` names it).

        Airflow 3 requires ``logical_date`` in the body; null means "no logical date", which lets
        the same DAG be triggered many times without run-id clashes.
        """
        if isinstance(logical_date, datetime):
            logical_date = logical_date.isoformat()
        body = {"logical_date": logical_date, "conf": conf}
        return self._request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0, *,
                     interval: float = POLL_INTERVAL_S) -> str:
        """Poll every ``interval`` s until the run is finished; returns its state ("success" or "failed")."""
        return poll_until(
            lambda: self.dag_run(dag_id, run_id)["state"],
            done=lambda state: state in FINISHED_RUN_STATES,
            timeout=timeout,
            timed_out=lambda state: TimeoutError(
                f"run {dag_id}/{run_id} still {state!r} after {timeout:.0f} s"
            ),
            interval=interval,
        )

    def wait_for_sweep(self, dag_id: str, run_id: str, timeout: float = 900.0, *,
                       interval: float = POLL_INTERVAL_S) -> tuple[list[str], str]:
        """Follow a sweep from the run that started it through each continuation round.

        A bayes sweep's later rounds are runs of the same DAG that each round's `end_round`
        triggers (docs/rounds.md); their ids carry a tag only the workers can compute, so the next
        one is read from the `trigger_run_id` XCom Airflow's trigger operator leaves. The run whose
        `end_round` returned a value finished the sweep. Returns the sweep's run ids in order and the
        state of the last one.
        """
        deadline = time.monotonic() + timeout
        runs = [run_id]
        while True:
            state = self.wait_for_run(dag_id, runs[-1], timeout=max(1.0, deadline - time.monotonic()), interval=interval)
            if state != "success" or self.has_xcom(dag_id, runs[-1], "end_round"):
                return runs, state
            following = self.next_round_run(dag_id, runs[-1], sweep_run=run_id, round_index=len(runs))
            if following is None:
                return runs, "failed"  # ended without finishing the sweep or starting its next round
            runs.append(following)

    def next_round_run(self, dag_id: str, run_id: str, *, sweep_run: str, round_index: int) -> str | None:
        """The run id `end_round` of `run_id` triggered: its `trigger_run_id` XCom, or, where a retried
        end_round found the run already there (and was skipped, its XCom cleared), the one run whose
        id starts with the round's name."""
        if self.has_xcom(dag_id, run_id, "end_round", key="trigger_run_id"):
            return self.xcom(dag_id, run_id, "end_round", key="trigger_run_id")
        from mlfleet.sweep.rounds import continuation_run_id

        sweep = self.xcom(dag_id, sweep_run, "prepare", key="sweep")
        prefix = continuation_run_id(sweep["experiment"], sweep["run_id"], round_index)
        found = self._request("GET", f"/dags/{dag_id}/dagRuns", params={"run_id_pattern": f"{prefix}__%"})
        runs = [r["dag_run_id"] for r in found.get("dag_runs", [])]
        return runs[0] if len(runs) == 1 else None

    def has_xcom(self, dag_id: str, run_id: str, task_id: str, *, key: str = "return_value") -> bool:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._http.get(path, params={"map_index": -1}).status_code == 200

    def dag_runs(self, dag_id: str, *, state: str | None = None) -> list[dict[str, Any]]:
        """The DAG's runs, newest first, optionally only those in `state` (e.g. "queued")."""
        params: dict[str, Any] = {"order_by": "-run_after", "limit": 100}
        if state:
            params["state"] = state
        return self._request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All task instances of a run (mapped ones included)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self._request("GET", path, params={"limit": 1000})["task_instances"]

    def xcom(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        key: str = "return_value",
        map_index: int = -1,
    ) -> Any:
        """An XCom value as the task pushed it (JSON-decoded)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self._request("GET", path, params={"map_index": map_index})["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value
