"""`mlfleet up`'s task-log server: Airflow's own log-serving app, on the loopback interface only.

Airflow 3.3's scheduler and triggerer each start a log server on every interface (`[::]` or
`0.0.0.0`, with no setting to change it), so anyone on the network could ask for task logs. `mlfleet
up` starts them with `--skip-serve-logs` and runs this process instead: Airflow's app
(`airflow.utils.serve_logs.create_app`, which checks the api-server-signed token as before) on
127.0.0.1, on both configured ports (worker and trigger logs come from the same folder). Task and
trigger processes report `loopback_hostname()` as their host (`[core] hostname_callable`), so the
api-server asks 127.0.0.1 for the logs of a running task.

Run as `python -m mlfleet.airflow.log_server` with the deployment's environment; importing this
module imports nothing heavy (every Airflow process imports it for the hostname).

Outside Airflow's public interface, knowingly: `create_app` lives in `airflow.utils.serve_logs`,
which the public interface (the task SDK, the REST API, the CLI, configuration) does not include.
No public door does this job in Airflow 3.3: the log server's only settings are its ports
(`[logging] worker_log_server_port`, `trigger_log_server_port`), with no host; the CLI has no
log-serving command, only `--skip-serve-logs` on the scheduler, triggerer and Celery worker; and
serving the folder from an app of our own would re-implement the token check (HS512 under
`[api] secret_key`, audience "task-instance-logs", the path in a `filename` claim), which is no
more documented than `create_app`. So this module uses Airflow's app as it is, and
tests/unit/airflow/test_log_server.py fails if it moves or stops checking the token. The other
way out, for a stack whose components share one log folder: no log server at all, since the
api-server reads task logs from that folder first (it would then report "Could not read served
logs" for running tasks); that is the devstack's choice to make (mlfleet.devstack.processes).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def loopback_hostname() -> str:
    """The host Airflow records for task and trigger processes of the local deployment."""
    return LOOPBACK


def listen(ports: list[int], host: str = LOOPBACK) -> list[socket.socket]:
    """Bound sockets on `host`, one per port (what uvicorn then serves on)."""
    sockets = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        sock.bind((host, port))
        sockets.append(sock)
    return sockets


def main() -> None:
    import uvicorn
    from airflow.sdk import conf  # the public configuration reader
    from airflow.utils.serve_logs import create_app  # not public interface: see the module's docstring
    from setproctitle import setproctitle

    setproctitle("airflow serve-logs (mlfleet, 127.0.0.1)")
    ports = sorted({conf.getint("logging", "worker_log_server_port"),
                    conf.getint("logging", "trigger_log_server_port")})
    level = conf.get("logging", "uvicorn_logging_level", fallback="info").lower()
    # As Airflow's own serve_logs: keep Airflow's logging set-up, no access log.
    config = uvicorn.Config(create_app(), log_level=level, log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=listen(ports))


if __name__ == "__main__":
    main()
