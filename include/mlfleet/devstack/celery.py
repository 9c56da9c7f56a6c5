"""Airflow on the CeleryExecutor, on one machine: the deployment teams move to, for tests and benchmarks.

`mlfleet up`'s own components (api-server, scheduler, dag-processor, triggerer, log-server), built
from the same parts (``environment``, ``processes``, ``health``) with three things changed through
env vars on top of ``airflow_env``: the executor is Airflow's ``CeleryExecutor``, the metadata DB
is PostgreSQL (the Celery result backend lives there too), and tasks go through a Redis broker to
``airflow celery worker`` processes. Each worker is started as a separate machine would be: its own
``MLFLEET_HOME`` and ``AIRFLOW_HOME`` (nothing of mlfleet's on disk is shared), its own name, which
Airflow records as the host of every task instance it runs. A sweep spread over them works only
with its state in the object store (``MLFLEET_SWEEP_STATE=object_store``) and MLflow and Optuna on
a database: the caller sets those ``MLFLEET_*`` variables in the environment, as for ``mlfleet up``.
``up`` creates MLflow's tables in that database beside ``airflow db migrate``.

Task logs stay in the deployment's log folder, which stands in for remote logging (S3 in a real
deployment): the api-server shows them, and a failed test can print them. Workers serve no logs
(``--skip-serve-logs``): two workers on one host would bind the same port.

Like the rest of ``devstack``, nothing here imports Airflow; ``wait_for_workers`` imports Celery.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlfleet.config import Settings

# The env var that names a worker to `worker_hostname` (each worker process gets its own).
WORKER_NAME_VAR = "MLFLEET_CELERY_WORKER"
# Worker names as the official Helm chart's worker pods are named. "airflow" in the name also keeps
# the worker recognisable once Celery retitles its process ("[celeryd: airflow-worker-1@host:...]"):
# `processes.pid_alive` looks for it before signalling a group whose pid file it reads.
WORKER_PREFIX = "airflow-worker-"
WORKER_PID_PREFIX = "celery-"
EXECUTOR = "CeleryExecutor"
# MLflow makes its tables on a store's first use, which would be the first sweep's `end_round`: on
# PostgreSQL that is its whole chain of Alembic migrations. `up` runs them beside Airflow's own, as
# `mlfleet up` does for its SQLite store (`stack.migrate`).
_MLFLOW_TABLES = ("import sys; from mlflow import MlflowClient; "
                  "MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)")
_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the stack's workers: the worker's name.

    Airflow records it as each task instance's ``hostname``. Workers on machines of their own are
    told apart by Airflow's default (the host's FQDN); the workers of this stack share one host.
    """
    return os.environ[WORKER_NAME_VAR]


@dataclass(frozen=True)
class CeleryWorker:
    """One `airflow celery worker`: its name (the task instances' hostname), its folders, its log."""

    name: str
    home: Path  # its MLFLEET_HOME
    airflow_home: Path
    log: Path
    pid: int | None = None


@dataclass(frozen=True)
class CeleryStack:
    """A running Celery deployment: where its API is, how to log in, its workers."""

    url: str
    username: str
    password: str
    workers: tuple[CeleryWorker, ...]
    pids: dict[str, int | None]


def celery_env(
    settings: Settings,
    *,
    database_url: str,
    broker_url: str,
    concurrency: int = 1,
    dags_folder: Path | None = None,
) -> dict[str, str]:
    """`airflow_env` with the CeleryExecutor, PostgreSQL metadata and a Redis broker.

    ``database_url`` is a SQLAlchemy URL (``postgresql+psycopg2://...``) of an empty or migrated
    database of this deployment's own; ``broker_url`` is ``redis://host:port/db``.
    """
    from mlfleet.devstack.environment import airflow_env

    env = airflow_env(settings, dags_folder)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        # Task states in the metadata DB's server, as Airflow's docs recommend for production.
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database_url}",
        # Tasks a worker runs at once. Each mlfleet batch already uses every core of its machine.
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        # The scheduler sends and polls in its own process: Airflow's default on 2 cores, and on more
        # cores it would start a process pool for every batch of tasks it queues.
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        # Redis hands a task that is not acknowledged within this many seconds to another worker, and
        # tasks are acknowledged when they end (Airflow's task_acks_late): it must outlast the longest
        # task, a batch's execution_timeout (mlfleet.airflow.dag_defaults.batch_timeout), or a long
        # batch would start a second time beside the first.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(visibility_timeout(settings)),
        # Tasks fork from the workers here, not from the scheduler: the workers load the task
        # libraries while Airflow imports itself (config/airflow_local_settings.py), before Celery's
        # prefork pool forks, as `mlfleet up`'s scheduler does for its LocalExecutor.
        "MLFLEET_PRELOAD": "celery worker",
    })
    return env


def visibility_timeout(settings: Settings) -> int:
    """Seconds the broker waits for a task's acknowledgement: a batch's longest run plus an hour."""
    return int((settings.max_timeout_minutes + settings.task_timeout_minutes) * 60) + 3600


def worker_env(env: dict[str, str], worker: CeleryWorker) -> dict[str, str]:
    """The deployment's env for one worker: its own MLFLEET_HOME and AIRFLOW_HOME, its own name."""
    return {
        **env,
        "MLFLEET_HOME": str(worker.home),
        "AIRFLOW_HOME": str(worker.airflow_home),
        "AIRFLOW_CONFIG": str(worker.airflow_home / "airflow.cfg"),
        WORKER_NAME_VAR: worker.name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
    }


def worker_cmd(worker: CeleryWorker, *, concurrency: int) -> list[str]:
    """`airflow celery worker` for one worker (Airflow's CLI: the stock worker, nothing patched)."""
    from mlfleet.devstack.processes import airflow_cmd

    return airflow_cmd("celery", "worker", "--celery-hostname", f"{worker.name}@%h",
                       "--concurrency", str(concurrency), "--skip-serve-logs",
                       # No start-up sync or event chatter between workers: nothing here uses it.
                       "--without-mingle", "--without-gossip")


def workers_of(settings: Settings, *, count: int, root: Path | None = None) -> tuple[CeleryWorker, ...]:
    """The stack's workers: ``<root>/<name>/{home,airflow}`` (default root: beside MLFLEET_HOME)."""
    from mlfleet.devstack.environment import logs_dir

    root = root or settings.home_dir.parent / f"{settings.home_dir.name}-workers"
    workers = []
    for index in range(1, count + 1):
        name = f"{WORKER_PREFIX}{index}"
        workers.append(CeleryWorker(name=name, home=root / name / "home", airflow_home=root / name / "airflow",
                                    log=logs_dir(settings) / f"{name}.log"))
    return tuple(workers)


def _worker_pid_file(settings: Settings, name: str) -> Path:
    from mlfleet.devstack.environment import run_dir

    return run_dir(settings) / f"{WORKER_PID_PREFIX}{name}.pid"


def start_worker(settings: Settings, worker: CeleryWorker, env: dict[str, str], *, concurrency: int) -> CeleryWorker:
    """Start one worker in its own process group (``down`` stops the group: its task processes too)."""
    from mlfleet.devstack.processes import spawn_group
    from mlfleet.storage import private_dir

    private_dir(worker.home)
    private_dir(worker.airflow_home)
    with worker.log.open("ab") as fh:
        fh.write(f"\n=== mlfleet celery: starting {worker.name} at {datetime.now():%F %T} ===\n".encode())
    pid = spawn_group(worker_cmd(worker, concurrency=concurrency), log_file=worker.log,
                      env=worker_env(env, worker), cwd=worker.airflow_home)
    path = _worker_pid_file(settings, worker.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")
    return CeleryWorker(name=worker.name, home=worker.home, airflow_home=worker.airflow_home, log=worker.log, pid=pid)


def wait_for_workers(broker_url: str, workers: tuple[CeleryWorker, ...], *, timeout: float) -> None:
    """Wait until every worker answers a Celery ping through the broker (it consumes tasks then).

    A worker that exits meanwhile fails at once, with its log's tail.
    """
    from celery import Celery

    from mlfleet.devstack.polling import poll_until
    from mlfleet.devstack.processes import group_alive, log_tail

    app = Celery(broker=broker_url)
    wanted = {w.name for w in workers}

    def answering() -> set[str]:
        for worker in workers:
            if worker.pid is not None and not group_alive(worker.pid):
                raise RuntimeError(f"Celery worker {worker.name} exited during startup; see {worker.log}:\n"
                                   f"{log_tail(worker.log)}")
        replies = app.control.ping(timeout=1.0) or []
        return {node.split("@", 1)[0] for reply in replies for node in reply}

    try:
        poll_until(answering, done=lambda names: wanted <= names, timeout=timeout,
                   timed_out=lambda names: TimeoutError(
                       f"Celery workers {sorted(wanted - names)} did not answer within {timeout:.0f} s; "
                       f"logs: {', '.join(str(w.log) for w in workers)}"))
    finally:
        app.close()


def _start_mlflow_tables(settings: Settings, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Create MLflow's tables in a database tracking store, in a process of its own (None: no database)."""
    from mlfleet.devstack.environment import logs_dir

    uri = settings.tracking_uri
    if uri.split(":", 1)[0].split("+", 1)[0] not in _DATABASE_SCHEMES:
        return None
    log = logs_dir(settings) / "mlflow-migrate.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen([sys.executable, "-c", _MLFLOW_TABLES, uri], env=env, cwd=settings.airflow_home,
                                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    return proc, log


def _wait_mlflow_tables(started: tuple[subprocess.Popen[bytes], Path] | None) -> None:
    from mlfleet.devstack.processes import log_tail

    if started is None:
        return
    proc, log = started
    if proc.wait() != 0:
        raise RuntimeError(f"creating MLflow's tables failed (exit {proc.returncode}); see {log}:\n{log_tail(log)}")


def up(
    settings: Settings,
    *,
    database_url: str,
    broker_url: str,
    workers: int = 2,
    concurrency: int = 1,
    worker_root: Path | None = None,
    wait_seconds: float = 180,
    dags_folder: Path | None = None,
) -> CeleryStack:
    """Migrate the metadata DB (and MLflow's, when it is a database), start the components and
    ``workers`` Celery workers, wait for all.

    Returns when the api-server reports a healthy scheduler, dag processor and triggerer and every
    worker answers a ping. On any failure everything this call started is stopped again. Expects
    nothing of this deployment running (``down`` first).
    """
    from mlfleet.devstack import processes
    from mlfleet.devstack.environment import admin_password, log_ports, logs_dir, run_dir
    from mlfleet.devstack.health import wait_healthy
    from mlfleet.devstack.ports import HOST, port_free
    from mlfleet.devstack.stack import migrate
    from mlfleet.storage import private_dir

    for folder in (settings.home_dir, settings.airflow_home):
        private_dir(folder)
    for folder in (run_dir(settings), logs_dir(settings)):
        folder.mkdir(parents=True, exist_ok=True)
    status = processes.status(settings)
    running = [c for c, alive in status.items() if alive]
    if running:
        raise RuntimeError(f"{', '.join(running)} of {settings.airflow_home} already running; stop them first")
    log_ports(settings, running=status)  # stored log-server ports another program took since are replaced
    port = settings.airflow_port
    if not port_free(port):
        raise RuntimeError(f"Port {port} on {HOST} is already in use; choose another with MLFLEET_AIRFLOW_PORT=<port>.")
    env = celery_env(settings, database_url=database_url, broker_url=broker_url, concurrency=concurrency,
                     dags_folder=dags_folder)
    password = admin_password(settings)
    url = f"http://{HOST}:{port}"
    started: dict[str, datetime] = {}
    pool: list[CeleryWorker] = []
    mlflow_tables = None
    try:
        mlflow_tables = _start_mlflow_tables(settings, env)
        migrate(settings, env=env)
        for component in processes.COMPONENTS:
            started[component] = datetime.now(timezone.utc).replace(microsecond=0)
            processes.start(settings, component, env)
        # Workers import Airflow while the components start: the two start-ups overlap.
        for worker in workers_of(settings, count=workers, root=worker_root):
            pool.append(start_worker(settings, worker, env, concurrency=concurrency))
        wait_healthy(settings, url, started, wait_seconds=wait_seconds)
        wait_for_workers(broker_url, tuple(pool), timeout=wait_seconds)
        _wait_mlflow_tables(mlflow_tables)
    except BaseException:
        if mlflow_tables is not None and mlflow_tables[0].poll() is None:
            mlflow_tables[0].kill()
            mlflow_tables[0].wait()
        down(settings)
        raise
    return CeleryStack(url=url, username=settings.airflow_username, password=password, workers=tuple(pool),
                       pids={**{c: processes.read_pid(settings, c) for c in processes.COMPONENTS},
                             **{w.name: w.pid for w in pool}})


def down(settings: Settings) -> list[str]:
    """Stop the workers, then the components (idempotent); returns the names of what was running.

    Workers first, while the api-server their task processes report to still answers.
    """
    from mlfleet.devstack import processes
    from mlfleet.devstack.environment import run_dir

    groups: dict[str, int] = {}
    pid_files = sorted(run_dir(settings).glob(f"{WORKER_PID_PREFIX}*.pid"))
    for path in pid_files:
        with contextlib.suppress(ValueError, OSError):
            pid = int(path.read_text().strip())
            if processes.group_alive(pid):
                groups[path.stem.removeprefix(WORKER_PID_PREFIX)] = pid
    processes.stop_groups(groups)
    for path in pid_files:
        path.unlink(missing_ok=True)
    return [*groups, *processes.stop(settings, processes.COMPONENTS)]


@contextlib.contextmanager
def celery_stack(settings: Settings, **kwargs: Any) -> Iterator[CeleryStack]:
    """``up`` (its keyword arguments), yield the running stack, ``down`` whatever happens."""
    try:
        yield up(settings, **kwargs)
    finally:
        down(settings)
