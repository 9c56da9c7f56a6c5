"""Run a local Airflow 3 (`mlfleet up` / `mlfleet down`); `rest_client` talks to it over REST.

Why not `airflow standalone`: it owns its children and exits with the terminal, hides their logs
in one interleaved stream and cannot be asked whether it is healthy. Here each component
(api-server, scheduler, dag-processor, triggerer) is its own background process in its own
session, with its own log file and pid file under ``$AIRFLOW_HOME``, so ``up`` can return, ``down``
can stop exactly what ``up`` started (the whole process group, task processes included), and a
second ``up`` is a no-op. A fifth process, ``log-server``, serves task logs on 127.0.0.1 in place of
the scheduler's and triggerer's own log servers, which Airflow binds to every interface
(mlfleet.airflow.log_server).

Shape of the deployment (all state under ``settings.airflow_home``):

* SQLite metadata DB + LocalExecutor. Airflow 3.3 has no SequentialExecutor any more and does not
  reject LocalExecutor on SQLite; Airflow turns on WAL mode for SQLite connections, which is what
  makes several writers (scheduler, dag-processor, api-server, task processes) work.
* SimpleAuthManager with one admin user. We write the password file ourselves (a random
  password, generated once), Airflow only adds users missing from it, so the password is stable
  across ``down``/``up`` and readable without parsing logs.
* MLFLEET_HOME and ``airflow_home`` are created 0700 (the metadata DB, the task logs), and the
  secrets and password files are 0600 (the Fernet key, the JWT and API secrets, the admin password).
* DAGs are paused at creation (Airflow's default): ``mlfleet up`` must not start every scheduled
  pipeline (Spark ETL, drift checks) by itself. Whoever triggers a DAG unpauses it first
  (``mlfleet.devstack.rest_client.ApiClient.unpause``), as the CLI and the integration test do.

The parts: ``environment`` (env vars, secrets, password, ports), ``processes`` (start, status and
stop of the component process groups), ``health`` (when it counts as up), ``ports`` and
``polling`` (tenacity waits, shared with ``rest_client``). No module here imports ``airflow``:
they run in the CLI and test processes, and Airflow reads its configuration at import time from
the process environment, which is not ours to change.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfleet.devstack import processes
from mlfleet.devstack.environment import admin_password, airflow_env, log_ports, logs_dir, run_dir
from mlfleet.devstack.health import wait_healthy
from mlfleet.devstack.ports import HOST, port_free
from mlfleet.devstack.processes import COMPONENTS, status
from mlfleet.storage import private_dir

if TYPE_CHECKING:
    from mlfleet.config import Settings

__all__ = ["COMPONENTS", "admin_password", "airflow_env", "down", "migrate", "status", "up"]


# MLflow creates its SQLite tables on a store's first use: seconds of Alembic migrations that the
# first sweep's end_round would pay (docs/design-figures.md, "Why the settings"). `up` runs them beside Airflow's own.
_MLFLOW_INIT = "from mlfleet.config import get_settings; from mlfleet.results.tracking import configure; configure(get_settings())"


def migrate(settings: Settings, *, env: dict[str, str] | None = None) -> None:
    """`airflow db migrate` of this deployment's DB (idempotent), logged to logs/db-migrate.log.

    A local (SQLite) MLflow store gets its tables at the same time, in a second process, logged to
    logs/mlflow-migrate.log. ``env`` defaults to ``airflow_env(settings)``. Raises RuntimeError with
    the failing log's tail.
    """
    env = airflow_env(settings) if env is None else env
    commands = {"airflow db migrate": (processes.airflow_cmd("db", "migrate"), "db-migrate.log")}
    if settings.tracking_uri.startswith("sqlite:"):
        commands["MLflow's store migration"] = ([sys.executable, "-c", _MLFLOW_INIT], "mlflow-migrate.log")
    running = []
    for name, (command, log_name) in commands.items():
        log = logs_dir(settings) / log_name
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            proc = subprocess.Popen(command, env=env, cwd=settings.airflow_home, stdin=subprocess.DEVNULL,
                                    stdout=fh, stderr=subprocess.STDOUT)
        running.append((name, proc, log))
    failed = [(name, proc, log) for name, proc, log in running if proc.wait() != 0]  # wait for all first
    if failed:
        name, proc, log = failed[0]
        raise RuntimeError(f"`{name}` failed (exit {proc.returncode}); see {log}:\n{processes.log_tail(log)}")


def up(
    settings: Settings,
    *,
    wait_seconds: float = 180,
    dags_folder: Path | None = None,
) -> dict[str, Any]:
    """Start the local Airflow (idempotent) and wait until scheduler and dag processor are healthy.

    Components already running are left alone; ``airflow db migrate`` runs only when something
    has to start. If startup fails, the components started by this call are stopped again.
    """
    for folder in (settings.home_dir, settings.airflow_home):  # secrets, metadata DB, task logs: 0700
        private_dir(folder)
    for folder in (run_dir(settings), logs_dir(settings)):
        folder.mkdir(parents=True, exist_ok=True)
    log_ports(settings, running=status(settings))
    env = airflow_env(settings, dags_folder)
    password = admin_password(settings)
    port = settings.airflow_port
    url = f"http://{HOST}:{port}"

    running = status(settings)
    missing = [c for c in COMPONENTS if not running[c]]
    if not running["api-server"] and not port_free(port):
        raise RuntimeError(
            f"Port {port} on {HOST} is already in use by another program; stop it or choose "
            f"another port with MLFLEET_AIRFLOW_PORT=<port>."
        )
    started: dict[str, datetime] = {}
    try:
        if missing:
            migrate(settings, env=env)
        for component in missing:
            started[component] = datetime.now(timezone.utc).replace(microsecond=0)
            processes.start(settings, component, env)
        wait_healthy(settings, url, started, wait_seconds=wait_seconds)
    except BaseException:
        processes.stop(settings, list(started))
        raise
    return {
        "url": url,
        "username": settings.airflow_username,
        "password": password,
        "pids": {c: processes.read_pid(settings, c) for c in COMPONENTS},
        "logs": str(logs_dir(settings)),
        "started": list(started),
    }


def down(settings: Settings) -> list[str]:
    """Stop every component (idempotent); returns the names of those that were running."""
    return processes.stop(settings, COMPONENTS)
