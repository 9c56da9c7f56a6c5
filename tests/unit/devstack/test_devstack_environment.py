"""What every `airflow` process of `mlfleet up` shares: files, secrets, ports, env vars."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from mlfleet.config import PROJECT_ROOT, Settings
from mlfleet.devstack import environment, stack


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_airflow_env_points_every_process_at_one_sqlite_deployment(settings: Settings) -> None:
    env = stack.airflow_env(settings)
    home = settings.airflow_home
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # Airflow's own
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(PROJECT_ROOT / "dags")
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    port = settings.airflow_port
    assert env["AIRFLOW__API__PORT"] == str(port)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{port}/execution/"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        environment.passwords_file(settings)
    )
    assert env["PYTHONPATH"].split(":")[:2] == [str(PROJECT_ROOT / "include"), str(environment.LOCAL_SETTINGS_DIR)]
    assert env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == str(environment.logs_dir(settings))


def test_only_the_scheduler_preloads_unless_told_otherwise(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every component gets the local settings on its path; MLFLEET_PRELOAD names the one that
    preloads (mlfleet.airflow.preload), and a value in the caller's environment wins ("" turns it off)."""
    monkeypatch.delenv(environment.PRELOAD_VAR, raising=False)
    assert stack.airflow_env(settings)[environment.PRELOAD_VAR] == "scheduler"
    assert (environment.LOCAL_SETTINGS_DIR / "airflow_local_settings.py").is_file()
    monkeypatch.setenv(environment.PRELOAD_VAR, "")
    assert stack.airflow_env(settings)[environment.PRELOAD_VAR] == ""


def test_airflow_env_takes_a_dags_folder_and_keeps_secrets_and_ports(
    settings: Settings, tmp_path: Path
) -> None:
    first = stack.airflow_env(settings, tmp_path / "dags")
    second = stack.airflow_env(settings)
    assert first["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    for key in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    ):
        assert first[key] and first[key] == second[key], key
    assert len(first["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64
    secrets_file = settings.airflow_home / environment.SECRETS_FILE
    assert _mode(secrets_file) == 0o600
    assert json.loads(secrets_file.read_text())["fernet_key"] == first["AIRFLOW__CORE__FERNET_KEY"]


def test_admin_password_is_private_stable_and_keeps_other_users(settings: Settings) -> None:
    password = stack.admin_password(settings)
    path = environment.passwords_file(settings)
    assert _mode(path) == 0o600
    assert json.loads(path.read_text()) == {settings.airflow_username: password}
    assert stack.admin_password(settings) == password
    # Airflow may add users of its own to the file; ours stays as it was.
    path.write_text(json.dumps({settings.airflow_username: password, "viewer": "v"}))
    assert stack.admin_password(settings) == password
    assert json.loads(path.read_text())["viewer"] == "v"


def test_log_ports_are_stored_once_and_replaced_only_when_another_program_took_them(
    settings: Settings,
) -> None:
    ports = environment.log_ports(settings)
    scheduler, triggerer = ports["worker_log_server_port"], ports["trigger_log_server_port"]
    assert len({scheduler, triggerer, settings.airflow_port}) == 3
    assert environment.log_ports(settings) == ports

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("", scheduler))
        squatter.listen()
        # Our own log server holding it is fine ...
        assert environment.log_ports(settings, running={environment.LOG_SERVER: True}) == ports
        # ... without `running` nothing is checked ...
        assert environment.log_ports(settings) == ports
        # ... but a port another program took is replaced before starting.
        moved = environment.log_ports(settings, running={})
    assert moved["worker_log_server_port"] not in (scheduler, triggerer)
    assert moved["trigger_log_server_port"] == triggerer
    stored = json.loads((settings.airflow_home / environment.PORTS_FILE).read_text())
    assert stored == moved


def test_secret_files_are_made_private_even_when_they_were_there_before(settings: Settings) -> None:
    """A secrets or password file that existed with wider permissions (written by hand, or by
    Airflow's SimpleAuthManager with the umask's mode) is 0600 once `mlfleet up` has read it."""
    secrets_file = settings.airflow_home / environment.SECRETS_FILE
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    secrets_file.write_text(json.dumps({"fernet_key": "kept"}))  # rewritten: two keys are missing
    secrets_file.chmod(0o644)
    assert environment.deployment_secrets(settings)["fernet_key"] == "kept"
    assert _mode(secrets_file) == 0o600
    secrets_file.chmod(0o644)  # complete: read, not rewritten
    environment.deployment_secrets(settings)
    assert _mode(secrets_file) == 0o600
    passwords = environment.passwords_file(settings)
    passwords.write_text(json.dumps({settings.airflow_username: "pw"}))
    passwords.chmod(0o644)
    assert stack.admin_password(settings) == "pw" and _mode(passwords) == 0o600


def test_mlfleet_home_and_airflow_home_are_created_private(tmp_path: Path) -> None:
    fresh = Settings(home=tmp_path / "fresh" / "home")
    stack.airflow_env(fresh)
    assert _mode(fresh.home_dir) == 0o700 and _mode(fresh.airflow_home) == 0o700


def test_task_logs_are_served_on_the_loopback_interface_only(settings: Settings) -> None:
    """The scheduler and triggerer start no log server of their own (Airflow's listen on every
    interface); the `log-server` component serves both ports on 127.0.0.1, and tasks report that
    address as their host, so the api-server fetches running tasks' logs there."""
    from importlib import import_module

    from mlfleet.devstack import processes

    for component in ("scheduler", "triggerer"):
        assert processes.component_cmd(component)[-2:] == [component, "--skip-serve-logs"]
    assert environment.LOG_SERVER in processes.COMPONENTS
    assert processes.component_cmd(environment.LOG_SERVER)[1:] == ["-m", "mlfleet.airflow.log_server"]
    module, name = stack.airflow_env(settings)["AIRFLOW__CORE__HOSTNAME_CALLABLE"].rsplit(".", 1)
    assert getattr(import_module(module), name)() == "127.0.0.1"
