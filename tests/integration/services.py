"""Real Redis and PostgreSQL servers for integration tests: started here, on 127.0.0.1, free ports.

No docker and no mocks: the servers are Debian's `redis-server` and PostgreSQL's `initdb` /
`pg_ctl`, each in its own temp dir, stopped (and the dir removed) when the fixture ends. A
missing binary FAILS the test with the package to install; it never skips, so a skipped test
cannot stand in for a feature nobody checked.

PostgreSQL refuses to run as root: as root, the data dir is handed to the `postgres` OS user and
initdb / pg_ctl run through `runuser -u postgres --`.

Imported as the top-level module `services` (pytest puts tests/integration on sys.path for its
conftest.py), which also lets spawned worker processes import `ask_in_worker`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from mlfleet.devstack.ports import free_port

INSTALL_HINT = "install it with: apt-get install redis-server postgresql"
DATABASE = "mlfleet_test"
PG_USER = "mlfleet"


def find_binary(name: str, *extra_dirs: str) -> str:
    """PATH first, then the given dirs (PostgreSQL keeps its binaries under a versioned dir)."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in extra_dirs:
        for directory in sorted(glob.glob(pattern), reverse=True):  # newest version first
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    pytest.fail(f"`{name}` not found on PATH: {INSTALL_HINT}", pytrace=False)


def _tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return "(no log)"


# --- Redis --------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (no RDB, no AOF); yields "127.0.0.1:<port>"."""
    import redis

    binary = find_binary("redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="mlfleet-redis-"))
    port = free_port()
    log = workdir / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--daemonize", "no"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}:\n{_tail(log)}", pytrace=False)
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer PING on port {port} within 15 s:\n{_tail(log)}",
                            pytrace=False)
            time.sleep(0.05)
        client.close()
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()  # SIGTERM: redis shuts down cleanly (nothing to save)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# --- PostgreSQL ---------------------------------------------------------------------------------

_PG_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def _as_postgres() -> list[str]:
    """Command prefix: PostgreSQL will not run as root, so root runs it as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root needs `runuser` (util-linux) to start PostgreSQL as `postgres`", pytrace=False)
    return [runuser, "-u", "postgres", "--"]


def _run(cmd: list[str], what: str, log: Path | None = None, timeout: float = 60) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        detail = proc.stdout[-2000:] + proc.stderr[-2000:]
        if log is not None:
            detail += f"\n--- {log} ---\n{_tail(log)}"
        pytest.fail(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{detail}", pytrace=False)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth, fsync off) with database `mlfleet_test`.

    Yields its SQLAlchemy URL, postgresql+psycopg2://mlfleet@127.0.0.1:<port>/mlfleet_test.
    """

    initdb = find_binary("initdb", *_PG_DIRS)
    pg_ctl = find_binary("pg_ctl", *_PG_DIRS)
    prefix = _as_postgres()
    # tempfile.mkdtemp, not pytest's tmp_path: pytest's base dir is 0700 root, which the
    # `postgres` user could not even traverse. The socket lives here too (short path).
    base = Path(tempfile.mkdtemp(prefix="mlfleet-pg-"))
    if prefix:
        shutil.chown(base, user="postgres", group="postgres")
    data, log = base / "data", base / "postgres.log"
    port = free_port()
    started = False
    try:
        _run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C",
              "--no-sync", "--no-instructions"], "initdb")
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        started = True  # from here on, always try to stop it
        _run([*prefix, pg_ctl, "-D", str(data), "-o", options, "-w", "-t", "60", "-l", str(log), "start"],
             "pg_ctl start", log=log, timeout=90)
        yield create_database(f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/postgres", DATABASE)
    finally:
        if started:
            for mode in ("fast", "immediate"):  # never leave a postmaster behind
                stopped = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", mode, "-w", "-t", "60", "stop"],
                                         capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
                if stopped.returncode == 0 or not (data / "postmaster.pid").exists():
                    break
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `server_url`; returns the new database's URL."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


# --- Optuna workers for the concurrency test (spawned processes import this module) --------------

_barrier: Any = None


def init_worker(barrier: Any) -> None:
    """ProcessPoolExecutor initializer: keep the shared barrier, import Optuna's RDB storage now."""
    global _barrier
    _barrier = barrier
    import optuna.storages._rdb.models  # noqa: F401 - the slow import, out of the timed race

    from mlfleet import tuning  # noqa: F401


def ask_in_worker(storage: str, study: str, spec_dict: dict[str, Any], n: int, seed: int) -> tuple[int, list[int], int]:
    """Open (or create, racing the other worker) a study, ask `n` trials, tell them.

    Returns (pid, the trials' numbers, how many were told).
    """
    from mlfleet import tuning
    from mlfleet.spec import parse_spec

    spec = parse_spec(spec_dict)
    _barrier.wait(timeout=60)  # both workers hit the storage at the same moment
    opened = tuning.open_study(storage=storage, name=study, seed=seed)
    trials = tuning.ask(opened, spec, n)
    rows = [{"trial_id": t.trial_id, "status": "success", "mean_score": 0.5 + seed / 10 + i / 100}
            for i, t in enumerate(trials)]
    return os.getpid(), [t.optuna_number for t in trials], tuning.tell(opened, rows, trials)


def tell_in_worker(storage: str, study: str, rows: list[dict[str, Any]], trials: list[dict[str, Any]]
                   ) -> tuple[int, int]:
    """A `record` task: tell the study every finished row, at the same moment as the other worker.

    Returns (pid, how many trials this process told).
    """
    from mlfleet import tuning
    from mlfleet.trials import Trial

    opened = tuning.open_study(storage=storage, name=study, seed=0)
    _barrier.wait(timeout=60)
    return os.getpid(), tuning.tell(opened, rows, [Trial.from_dict(t) for t in trials])


# AWS: a moto server (a real HTTP endpoint: the async triggers need one) with the SageMaker runtime
# stand-in of aws_runtime.py, in its own process.

class AwsEmulator:
    """Handle on the running emulator: clients, the requests it received, and a hold switch."""

    region = "us-east-1"
    bucket = "mlfleet-test"

    def __init__(self, endpoint: str, work: Path) -> None:
        self.endpoint = endpoint
        self.work = work

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    @property
    def connection_uri(self) -> str:
        """`AIRFLOW_CONN_AWS_DEFAULT`: the provider's hooks, operators and triggers all go here."""
        import json

        return json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                           "extra": {"endpoint_url": self.endpoint, "region_name": self.region}})

    def created_training_jobs(self) -> list[dict[str, Any]]:
        """Every CreateTrainingJob request the emulator received, in order."""
        import json

        path = self.work / "created.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """New training jobs stay InProgress (not started) until the block ends."""
        flag = self.work / "hold"
        flag.touch()
        try:
            yield
        finally:
            flag.unlink(missing_ok=True)


@contextlib.contextmanager
def aws_emulator() -> Iterator[AwsEmulator]:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="mlfleet-aws-"))
    log = work / "server.log"
    script = Path(__file__).with_name("aws_runtime.py")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(script), "--port", str(port), "--work", str(work)],
                                stdout=out, stderr=subprocess.STDOUT)
    emulator = AwsEmulator(f"http://127.0.0.1:{port}", work)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in _tail(log):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto server did not start:\n{_tail(log)}", pytrace=False)
            time.sleep(0.2)
        emulator.client("s3").create_bucket(Bucket=emulator.bucket)
        yield emulator
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


# --- Airflow through `mlfleet up` -----------------------------------------------------------------

MLFLEET = str(Path(sys.executable).parent / "mlfleet")


def mlfleet_up() -> str:
    """`mlfleet up` as a user runs it (starts whatever component is not running); its stdout."""
    out = subprocess.run([MLFLEET, "up"], capture_output=True, text=True, env=os.environ, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@contextlib.contextmanager
def airflow_stack(home: Path, dag_ids: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[Any, Any]]:
    """`mlfleet up` on a fresh MLFLEET_HOME and a free port, with `env` set for every component;
    yields (settings, REST client) once `dag_ids` are parsed and unpaused, and stops it all after."""
    from mlfleet.config import get_settings
    from mlfleet.devstack import stack
    from mlfleet.devstack.rest_client import ApiClient, api_token

    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"MLFLEET_HOME": str(home), "MLFLEET_AIRFLOW_PORT": str(free_port()), **(env or {})}.items():
            patch.setenv(key, value)
        settings = get_settings()
        try:
            mlfleet_up()
            info = stack.up(settings)
            api = ApiClient(info["url"], api_token(info["url"], info["username"], info["password"]), timeout=60)
            for dag_id in dag_ids:
                api.wait_for_dag(dag_id, timeout=120)
                api.unpause(dag_id)
            with api:
                yield settings, api
        finally:
            stack.down(settings)


def group_gone(pgid: int) -> bool:
    """No live (non-zombie) process is left in the group; zombies wait on a reaper, not on us."""
    import psutil

    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return False
    return True


def shared_state_env(*, home: Path, aws: AwsEmulator, prefix: str, postgres_url: str) -> dict[str, str]:
    """mlfleet's settings for workers that share no disk: sweep state under ``s3://<bucket>/<prefix>``
    on the moto server, Optuna and MLflow in databases of their own on the PostgreSQL server."""
    return {
        "MLFLEET_HOME": str(home),
        "MLFLEET_AIRFLOW_PORT": str(free_port()),
        "MLFLEET_SWEEP_STATE": "object_store",
        "MLFLEET_OBJECT_STORE_URI": f"s3://{aws.bucket}/{prefix}",
        "MLFLEET_OPTUNA_STORAGE_URL": create_database(postgres_url, f"{prefix}_optuna"),
        "MLFLEET_MLFLOW_TRACKING_URI": create_database(postgres_url, f"{prefix}_mlflow"),
        "AIRFLOW_CONN_AWS_DEFAULT": aws.connection_uri,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws.region,
        "MLFLOW_S3_ENDPOINT_URL": aws.endpoint,  # MLflow's own S3 client (the model's artifacts)
    }
