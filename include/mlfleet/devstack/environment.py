"""What every `airflow` process of the local deployment agrees on: paths, secrets, ports, env vars.

All state lives under ``settings.airflow_home``. Secrets, the admin password and the log-server
ports are chosen once and stored there, so they survive ``down``/``up`` and a deleted airflow.cfg.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlfleet.config import PROJECT_ROOT
from mlfleet.devstack.ports import HOST, free_port, port_free
from mlfleet.storage import keep_private, private_dir, write_private_atomic

if TYPE_CHECKING:
    from mlfleet.config import Settings

SECRETS_FILE = "mlfleet_secrets.json"
PORTS_FILE = "mlfleet_ports.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
# Task logs are served over HTTP by one `log-server` component on 127.0.0.1 (mlfleet.airflow.log_server;
# the scheduler's and triggerer's own servers would listen on every interface), on the two ports
# Airflow asks for worker and trigger logs. Airflow's default ports would clash between two
# deployments on one machine (a test next to `mlfleet up`).
LOG_SERVER = "log-server"
LOG_PORTS: dict[str, int] = {"worker_log_server_port": 8793, "trigger_log_server_port": 8794}
# Airflow's local settings file (airflow_local_settings.py), put on every component's PYTHONPATH.
LOCAL_SETTINGS_DIR = PROJECT_ROOT / "config"
# Which `airflow` commands import what tasks need as they start (config/airflow_local_settings.py).
PRELOAD_VAR = "MLFLEET_PRELOAD"


def run_dir(settings: Settings) -> Path:
    """Where the components' pid files live."""
    return settings.airflow_home / "run"


def logs_dir(settings: Settings) -> Path:
    """Component logs, `airflow db migrate`'s log and Airflow's task logs."""
    return settings.airflow_home / "logs"


def passwords_file(settings: Settings) -> Path:
    """SimpleAuthManager's password file (user -> password)."""
    return settings.airflow_home / PASSWORDS_FILE


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets): 0600 whether it existed or not."""
    write_private_atomic(path, text)


def deployment_secrets(settings: Settings) -> dict[str, str]:
    """Fernet key, JWT secret and API secret key: generated once, reused on every start.

    Airflow would otherwise write fresh ones into airflow.cfg on first use; keeping them in our own
    file and passing them as env vars means a deleted airflow.cfg cannot strand encrypted
    connections or invalidate tokens of a running api-server.
    """
    path = settings.airflow_home / SECRETS_FILE
    keep_private(path)
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        # Fernet key format: url-safe base64 of 32 random bytes.
        "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        # HS512 wants >= 64 bytes of key (PyJWT warns below that).
        "jwt_secret": lambda: secrets.token_urlsafe(64),
        # Signs the api-server's requests to the log server with HS512 too.
        "api_secret_key": lambda: secrets.token_urlsafe(64),
    }
    missing = [k for k in wanted if not data.get(k)]
    for key in missing:
        data[key] = wanted[key]()
    if missing:
        write_private(path, json.dumps(data, indent=2) + "\n")
    return data


def log_ports(settings: Settings, *, running: Mapping[str, bool] | None = None) -> dict[str, int]:
    """The log server's ports (worker and trigger logs), chosen once per airflow_home and stored.

    Airflow's defaults (8793/8794) when free, else any free port, on 127.0.0.1 where the log server
    listens. With ``running`` (which components are up; ``up`` passes it before starting), a stored
    port now taken by another program is replaced, unless the log server is the one holding it.
    """
    path = settings.airflow_home / PORTS_FILE
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for key, default in LOG_PORTS.items():
        port = ports.get(key)
        taken_by_other = (
            port is not None
            and running is not None
            and not running.get(LOG_SERVER)
            and not port_free(port, HOST)
        )
        if port is None or taken_by_other:
            taken = {settings.airflow_port, *(v for k, v in ports.items() if k != key)}
            port = default if default not in taken and port_free(default, HOST) else free_port(HOST)
            ports[key] = port
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports, indent=2) + "\n")
    return ports


def admin_password(settings: Settings) -> str:
    """The admin password, created on first call and then stable (SimpleAuthManager reads it)."""
    path = passwords_file(settings)
    keep_private(path)
    content = path.read_text().strip() if path.exists() else ""
    passwords: dict[str, str] = json.loads(content) if content else {}
    user = settings.airflow_username
    if not passwords.get(user):
        passwords[user] = secrets.token_urlsafe(12)
        write_private(path, json.dumps(passwords) + "\n")
    return passwords[user]


def airflow_env(settings: Settings, dags_folder: Path | None = None) -> dict[str, str]:
    """The complete environment for any `airflow` subcommand of this deployment.

    Used for the five components, `airflow db migrate`, and by tests / the CLI for
    `airflow dags test`, so every process agrees on DB, secrets and folders. ``dags_folder``
    overrides PROJECT_ROOT/dags (tests point it at a tmp folder). Creates MLFLEET_HOME and
    airflow_home (0700: they hold the secrets, the metadata DB and the task logs) and the secrets
    file on first call.
    """
    home = settings.airflow_home
    private_dir(settings.home_dir)
    private_dir(home)
    sec = deployment_secrets(settings)
    ports = log_ports(settings)
    port = settings.airflow_port
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    # config/ holds airflow_local_settings.py, which every `airflow` process imports at start.
    pythonpath = [str(PROJECT_ROOT / "include"), str(LOCAL_SETTINGS_DIR)]
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
            # The scheduler imports pandas, scikit-learn, Optuna and MLflow as it starts (through
            # config/airflow_local_settings.py), before the LocalExecutor forks its workers, so task
            # processes start with them (mlfleet.airflow.preload). Set MLFLEET_PRELOAD= to turn it off.
            PRELOAD_VAR: env.get(PRELOAD_VAR, "scheduler"),
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
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
            # Task processes reach the api-server here; the default assumes :8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
            # Each batch task already uses every core: a few task slots are plenty on one machine.
            "AIRFLOW__CORE__PARALLELISM": str(max(4, 2 * (os.cpu_count() or 1))),
            # The embedded Spark: local mode with every core (feature_pipeline's conn_id).
            "AIRFLOW_CONN_SPARK_LOCAL": json.dumps({"conn_type": "spark", "host": "local[*]"}),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # A lost scheduler or task process is noticed within a minute, not five (Airflow's
            # defaults): a task without a heartbeat for 60 s fails into its retry, and a restarted
            # scheduler resets a dead one's tasks within 30 s (docs/fault-drills.md measures both;
            # supervisors heartbeat every 5 s, so 60 s is twelve missed beats).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
            # An idle scheduler loop sleeps 0.25 s, not Airflow's 1 s. The scheduler acts only in a
            # loop, so every step of a run (the run starts, a task's end queues the next task, a
            # continuation round's run starts) waits for the next one: about 0.3 s a step at
            # 0.25 s, 0.9 s at 1 s (Airflow's timestamps, 2 cores), ~0.6 s saved on each of the
            # three or more steps a round takes.
            # The price is CPU while nothing runs: an idle scheduler took ~10 CPU-s a minute at
            # 0.25 s, ~4 at 1 s. No public setting wakes the scheduler when a task ends instead
            # (scheduler_heartbeat_sec only says how often it records being alive).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            # New DAG files show up within seconds instead of 5 minutes. An edited DAG file is
            # re-parsed at the next refresh too (its mtime is newer than its last parse: the
            # default `file_parsing_sort_mode = modified_time`), so the periodic re-parse only
            # catches edits to the code a DAG file imports: every 2 minutes, not Airflow's 30 s.
            # A shorter re-parse interval costs an idle stack markedly more CPU
            # (docs/design-figures.md, "Why the settings").
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs_dir(settings)),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_log_server_port"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_log_server_port"]),
            # Tasks and triggers report 127.0.0.1 as their host: the api-server fetches a running
            # task's log from there, where the log server listens (mlfleet.airflow.log_server).
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mlfleet.airflow.log_server.loopback_hostname",
        }
    )
    return env
