"""`mlfleet up`'s log server: Airflow's log-serving app, answering on 127.0.0.1 and nowhere else."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import psutil

from mlfleet.config import Settings
from mlfleet.devstack import environment

# The token the api-server signs when it asks a log server for a file (as Airflow's FileTaskHandler does).
TOKEN = """
import sys
from airflow.api_fastapi.auth.tokens import JWTGenerator, get_signing_key
generator = JWTGenerator(secret_key=get_signing_key("api", "secret_key"), algorithm="HS512", private_key=None,
                         issuer=None, valid_for=30, audience="task-instance-logs")
for filename in sys.argv[1:]:
    print(generator.generate({"filename": filename}))
"""


def test_the_log_server_listens_on_the_loopback_interface_only(settings: Settings) -> None:
    env = environment.airflow_env(settings)
    ports = sorted(environment.log_ports(settings).values())
    log = environment.logs_dir(settings) / "log-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = psutil.Popen([sys.executable, "-m", "mlfleet.airflow.log_server"], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        listening: set[tuple[str, int]] = set()
        while len(listening) < len(ports):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
            listening = {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                         if c.status == psutil.CONN_LISTEN}
        assert listening == {("127.0.0.1", port) for port in ports}
        relative = "dag_id=d/run_id=r/task_id=t/attempt=1.log"
        (environment.logs_dir(settings) / relative).parent.mkdir(parents=True, exist_ok=True)
        (environment.logs_dir(settings) / relative).write_text("hello from the task\n")
        other = "dag_id=d/run_id=r/task_id=t/attempt=2.log"
        token, other_token = subprocess.run(
            [sys.executable, "-c", TOKEN, relative, other], env=env, capture_output=True, text=True,
            check=True).stdout.strip().splitlines()[-2:]  # after any warning Airflow logs
        for port in ports:  # Airflow's app: the api-server's signed request is served, any other refused
            url = f"http://127.0.0.1:{port}/log/{relative}"
            assert httpx.get(url, timeout=10).status_code == 403
            # a token the api-server signed for another file
            assert httpx.get(url, headers={"Authorization": other_token}, timeout=10).status_code == 403
            served = httpx.get(url, headers={"Authorization": token}, timeout=10)
            assert (served.status_code, served.text) == (200, "hello from the task\n")
        assert "airflow" in " ".join(proc.cmdline())  # what `mlfleet down` checks before signalling
    finally:
        proc.terminate()
        proc.wait(timeout=30)
