"""Run a local Airflow 3 (`mlfleet up` / `mlfleet down`); `rest_client` talks to it over REST.

Why not `airflow standalone`: it owns its children and exits with the terminal, hides their logs
in one interleaved stream and cannot be asked whether it is healthy. Here each component
(api-server, scheduler, dag-processor, triggerer) is its own background process in its own
session, with its own log file and pid file under ``$AIRFLOW_HOME``, so ``up`` can return, ``down``
can stop exactly what ``up`` started (the whole process group, task processes included), and a
second ``up`` is a no-op.

Shape of the deployment (all state under ``settings.airflow_home``):

* SQLite metadata DB + LocalExecutor. Airflow 3.3 has no SequentialExecutor any more and does not
  reject LocalExecutor on SQLite; Airflow turns on WAL mode for SQLite connections, which is what
  makes several writers (scheduler, dag-processor, api-server, task processes) work.
* SimpleAuthManager with one admin user. We write the password file ourselves (a random
  password, generated once), Airflow only adds users missing from it, so the password is stable
  across ``down``/``up`` and readable without parsing logs.
* DAGs are paused at creation (Airflow's default): ``mlfleet up`` must not start every scheduled
  pipeline (Spark ETL, drift checks) by itself. Whoever triggers a DAG unpauses it first
  (``mlfleet.devstack.rest_client.ApiClient.unpause``), as the CLI and the integration test do.

This module never imports ``airflow``: it runs in the CLI and test processes, and Airflow reads
its configuration at import time from the process environment, which is not ours to change.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlfleet.config import PROJECT_ROOT

if TYPE_CHECKING:
    from mlfleet.config import Settings

log = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
# Keys in GET /api/v2/monitor/health that ``up`` waits for (the api-server answering is implied).
HEALTH_KEYS: dict[str, str] = {"scheduler": "scheduler", "dag-processor": "dag_processor"}

_SECRETS_FILE = "mlfleet_secrets.json"
_PORTS_FILE = "mlfleet_ports.json"
# The scheduler and triggerer each serve their task logs over HTTP on every interface; Airflow's
# default ports would clash between two deployments on one machine (a test next to `mlfleet up`).
_LOG_PORTS: dict[str, tuple[str, int]] = {
    "scheduler": ("worker_log_server_port", 8793),
    "triggerer": ("trigger_log_server_port", 8794),
}
_PASSWORDS_FILE = "simple_auth_manager_passwords.json"
_STOP_TIMEOUT_S = 20.0
_HOST = "127.0.0.1"
# Popen objects of the components this process started: kept so they are reaped (no zombies,
# no "subprocess still running" warnings) and so ``down`` can wait on them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def _run_dir(settings: Settings) -> Path:
    return settings.airflow_home / "run"


def _logs_dir(settings: Settings) -> Path:
    return settings.airflow_home / "logs"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _secrets(settings: Settings) -> dict[str, str]:
    """Fernet key, JWT secret and API secret key: generated once, reused on every start.

    Airflow would otherwise write fresh ones into airflow.cfg on first use; keeping them in our own
    file and passing them as env vars means a deleted airflow.cfg cannot strand encrypted
    connections or invalidate tokens of a running api-server.
    """
    path = settings.airflow_home / _SECRETS_FILE
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        # Fernet key format: url-safe base64 of 32 random bytes.
        "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        # HS512 wants >= 64 bytes of key (PyJWT warns below that).
        "jwt_secret": lambda: secrets.token_urlsafe(64),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
    }
    missing = [k for k in wanted if not data.get(k)]
    for key in missing:
        data[key] = wanted[key]()
    if missing:
        _write_private(path, json.dumps(data, indent=2) + "\n")
    return data


def _log_ports(settings: Settings, *, refresh: bool = False) -> dict[str, int]:
    """Log-server ports of scheduler and triggerer, chosen once per airflow_home and stored.

    Airflow's defaults (8793/8794) when free, else any free port. With ``refresh`` (``up``, before
    starting), a stored port now taken by another program is replaced, unless its own component
    is the one holding it.
    """
    path = settings.airflow_home / _PORTS_FILE
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    running = status(settings) if refresh else {}
    changed = False
    for component, (key, default) in _LOG_PORTS.items():
        port = ports.get(key)
        if port is None or (refresh and not running.get(component) and not _port_free(port, "")):
            taken = {settings.airflow_port, *(v for k, v in ports.items() if k != key)}
            port = default if default not in taken and _port_free(default, "") else _any_port()
            ports[key] = port
            changed = True
    if changed:
        path.write_text(json.dumps(ports, indent=2) + "\n")
    return ports


def _passwords_file(settings: Settings) -> Path:
    return settings.airflow_home / _PASSWORDS_FILE


def admin_password(settings: Settings) -> str:
    """The admin password, created on first call and then stable (SimpleAuthManager reads it)."""
    path = _passwords_file(settings)
    content = path.read_text().strip() if path.exists() else ""
    passwords: dict[str, str] = json.loads(content) if content else {}
    user = settings.airflow_username
    if not passwords.get(user):
        passwords[user] = secrets.token_urlsafe(12)
        _write_private(path, json.dumps(passwords) + "\n")
    return passwords[user]


def airflow_env(settings: Settings, dags_folder: Path | None = None) -> dict[str, str]:
    """The complete environment for any `airflow` subcommand of this deployment.

    Used for the four components, `airflow db migrate`, and by tests / the CLI for
    `airflow dags test`, so every process agrees on DB, secrets and folders. ``dags_folder``
    overrides PROJECT_ROOT/dags (tests point it at a tmp folder). Creates airflow_home and the
    secrets file on first call.
    """
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    sec = _secrets(settings)
    log_ports = _log_ports(settings)
    port = settings.airflow_port
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    pythonpath = [str(PROJECT_ROOT / "include")]
    if env.get("PYTHONPATH"):
        pythonpath.append(env["PYTHONPATH"])
    env.update(
        {
            # Components and the LocalExecutor spawn `airflow ...` by name.
            "PATH": os.pathsep.join([venv_bin, env.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "MLFLEET_HOME": str(settings.home_dir),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_file(settings)),
            # Task processes reach the api-server here; the default assumes :8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{_HOST}:{port}/execution/",
            "AIRFLOW__API__HOST": _HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
            # New DAG files show up within seconds instead of 5 minutes; edits within 10 s.
            # Each batch task already uses every core: a few task slots are plenty on one machine.
            "AIRFLOW__CORE__PARALLELISM": str(max(4, 2 * (os.cpu_count() or 1))),
            # The embedded Spark: local mode with every core (feature_pipeline's conn_id).
            "AIRFLOW_CONN_SPARK_LOCAL": json.dumps({"conn_type": "spark", "host": "local[*]"}),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_logs_dir(settings)),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_ports["worker_log_server_port"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_ports["trigger_log_server_port"]),
        }
    )
    return env


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _airflow_cmd(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "airflow"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "airflow", *args]


def _pid_file(settings: Settings, component: str) -> Path:
    return _run_dir(settings) / f"{component}.pid"


def _read_pid(settings: Settings, component: str) -> int | None:
    try:
        return int(_pid_file(settings, component).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (not a zombie) and, where /proc tells, is an Airflow process."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: our pid was reused
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True  # no procfs (macOS): the signal check is all we have
    if _is_zombie(pid):
        return False
    try:
        return b"airflow" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    """True while any process of the component's process group (its tasks too) is left."""
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if Path(f"/proc/{pgid}").exists():
        if _is_zombie(pgid):
            # A zombie leader keeps its pid (no reuse yet): members still running are ours, e.g.
            # the api-server's workers finishing after their multi-threaded parent exited.
            return _live_members(pgid)
        # The leader runs: it is ours only if it is still an Airflow process (pid reuse).
        return _pid_alive(pgid)
    # Leader gone, members left: the kernel does not reuse a pid still used as a group id,
    # so these are our orphans (e.g. task processes).
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _live_members(pgid: int) -> bool:
    """Any process of group `pgid` that is not a zombie (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def status(settings: Settings) -> dict[str, bool]:
    """Which components have a live process (by pid file)."""
    result = {}
    for component in COMPONENTS:
        pid = _read_pid(settings, component)
        result[component] = pid is not None and _pid_alive(pid)
    return result


def _port_free(port: int, host: str = _HOST) -> bool:
    """Whether a server could listen on ``host:port`` now ("" = every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn sets: sockets in TIME_WAIT do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _any_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _migrate(settings: Settings, env: dict[str, str]) -> None:
    log = _logs_dir(settings) / "db-migrate.log"
    with log.open("ab") as fh:
        proc = subprocess.run(
            _airflow_cmd("db", "migrate"),
            env=env,
            cwd=settings.airflow_home,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`airflow db migrate` failed (exit {proc.returncode}); see {log}:\n{_log_tail(log)}"
        )


def _start(settings: Settings, component: str, env: dict[str, str]) -> int:
    log = _logs_dir(settings) / f"{component}.log"
    with log.open("ab") as fh:
        fh.write(f"\n=== mlfleet up: starting {component} at {datetime.now():%F %T} ===\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            _airflow_cmd(component),
            env=env,
            cwd=settings.airflow_home,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `down` signals the component and its tasks
        )
    _CHILDREN[proc.pid] = proc
    _pid_file(settings, component).write_text(f"{proc.pid}\n")
    return proc.pid


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


def _healthy(health: dict[str, Any], started: dict[str, datetime]) -> bool:
    """Scheduler and dag processor healthy, with a heartbeat from the processes we just started.

    The heartbeat check matters after a crash: a killed scheduler's job row still looks alive
    for `scheduler_health_check_threshold` seconds.
    """
    for component, key in HEALTH_KEYS.items():
        entry = health.get(key) or {}
        if entry.get("status") != "healthy":
            return False
        since = started.get(component)
        if since and not _heartbeat_after(entry.get(f"latest_{key}_heartbeat"), since):
            return False
    return True


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
    home = settings.airflow_home
    for folder in (home, _run_dir(settings), _logs_dir(settings)):
        folder.mkdir(parents=True, exist_ok=True)
    _log_ports(settings, refresh=True)
    env = airflow_env(settings, dags_folder)
    password = admin_password(settings)
    port = settings.airflow_port
    url = f"http://{_HOST}:{port}"

    running = status(settings)
    missing = [c for c in COMPONENTS if not running[c]]
    if not running["api-server"] and not _port_free(port):
        raise RuntimeError(
            f"Port {port} on {_HOST} is already in use by another program; stop it or choose "
            f"another port with MLFLEET_AIRFLOW_PORT=<port>."
        )
    started: dict[str, datetime] = {}
    try:
        if missing:
            _migrate(settings, env)
        for component in missing:
            started[component] = datetime.now(timezone.utc).replace(microsecond=0)
            _start(settings, component, env)
        _wait_healthy(settings, url, started, wait_seconds)
    except BaseException:
        _stop(settings, list(started))
        raise
    pids = {c: _read_pid(settings, c) for c in COMPONENTS}
    return {
        "url": url,
        "username": settings.airflow_username,
        "password": password,
        "pids": pids,
        "logs": str(_logs_dir(settings)),
        "started": list(started),
    }


def _wait_healthy(
    settings: Settings, url: str, started: dict[str, datetime], wait_seconds: float
) -> None:
    deadline = time.monotonic() + wait_seconds
    last: Any = None
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while True:
            for component in COMPONENTS:
                if not status(settings)[component]:
                    log = _logs_dir(settings) / f"{component}.log"
                    raise RuntimeError(
                        f"Airflow {component} exited during startup; see {log}:\n{_log_tail(log)}"
                    )
            try:
                resp = client.get("/api/v2/monitor/health")
                last = resp.json() if resp.status_code == 200 else f"HTTP {resp.status_code}"
                if isinstance(last, dict) and _healthy(last, started):
                    return
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Airflow at {url} not healthy after {wait_seconds:.0f} s; last health: {last}. "
                    f"Logs in {_logs_dir(settings)}"
                )
            time.sleep(1.0)


def _stop(settings: Settings, components: list[str]) -> list[str]:
    """SIGTERM each component's process group, wait, SIGKILL what is left, remove pid files."""
    groups: dict[str, int] = {}
    for component in components:
        pid = _read_pid(settings, component)
        if pid is not None and _group_alive(pid):
            groups[component] = pid
            _signal_group(pid, signal.SIGTERM)
    t0 = time.monotonic()
    pending = dict(groups)
    while pending and time.monotonic() - t0 < _STOP_TIMEOUT_S:
        time.sleep(0.2)
        for component, pgid in list(pending.items()):
            if not _group_alive(pgid):
                log.debug("%s stopped after %.1f s", component, time.monotonic() - t0)
                del pending[component]
    for component, pgid in pending.items():
        log.warning("%s did not stop within %.0f s of SIGTERM; sending SIGKILL", component, _STOP_TIMEOUT_S)
        _signal_group(pgid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5.0
    while time.monotonic() < kill_deadline and any(_group_alive(p) for p in pending.values()):
        time.sleep(0.1)
    for pgid in groups.values():
        # A multi-threaded leader shows as a zombie before it can be reaped: collect it now so no
        # pid of ours outlives `down`.
        child = _CHILDREN.pop(pgid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    for component in components:
        _pid_file(settings, component).unlink(missing_ok=True)
    return list(groups)


def down(settings: Settings) -> list[str]:
    """Stop every component (idempotent); returns the names of those that were running."""
    return _stop(settings, list(COMPONENTS))
