"""Benchmark 5, one more path: `experiment_sweep` on Airflow's CeleryExecutor, beside `mlfleet up`.

The deployment teams move to, on this machine: the Celery stack of mlfleet.devstack.celery (the
same components as `mlfleet up`, PostgreSQL metadata, a Redis broker, two `airflow celery worker`
processes each with its own MLFLEET_HOME), sweep state in the object store (a moto server), MLflow
and Optuna on PostgreSQL. The sweep is triggered over REST and timed exactly as the `mlfleet up`
path (bench_sweeps.scheduler_sweep): from the POST to the `end_date` of the run that finalized the
sweep, polled every 5 s. What it returns has that path's shape, so run.py renders it the same way.

Redis, PostgreSQL and the moto server are the integration tests' own (tests/integration/services.py:
real servers in temp dirs, stopped afterwards). All state lives under ``work_dir``; the environment
is restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "experiment_sweep"


def _stamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set env vars for the block (the stack's components inherit them), then restore the old ones."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _test_services() -> Any:
    """tests/integration/services.py: the real Redis, PostgreSQL and moto servers the tests start."""
    folder = str(ROOT / "tests" / "integration")
    sys.path.insert(0, folder)
    try:
        import services
    finally:
        sys.path.remove(folder)
    return services


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str, Any]]:
    """Redis, PostgreSQL and the moto server: (redis host:port, PostgreSQL URL, the AWS emulator)."""
    found = _test_services()
    with found.redis_server() as redis_url, found.postgres_server() as postgres_url, found.aws_emulator() as aws:
        yield redis_url, postgres_url, aws


def sweep_on_stack(api: Any, spec: dict[str, Any], *, aws: Any, timeout: float = 7200) -> dict[str, Any]:
    """Trigger the sweep over REST; wall from the POST to the end of its last run, task durations
    from the REST API, the leaderboard from the object store."""
    started = time.time()
    run = api.trigger(DAG_ID, {"spec": spec})
    runs, state = api.wait_for_sweep(DAG_ID, run["dag_run_id"], timeout=timeout, interval=5.0)
    wall = _stamp(api.dag_run(DAG_ID, runs[-1])["end_date"]).timestamp() - started
    if state != "success":
        raise RuntimeError(f"{DAG_ID} run {runs[-1]} ended {state}")
    tasks: dict[str, list[float]] = {}
    waits: list[float] = []
    hosts: Counter[str] = Counter()
    for run_id in runs:
        for ti in api.task_instances(DAG_ID, run_id):
            queued, start, end = _stamp(ti.get("queued_when")), _stamp(ti.get("start_date")), _stamp(ti.get("end_date"))
            if start and end:
                tasks.setdefault(ti["task_id"], []).append((end - start).total_seconds())
            if queued and start:
                waits.append((start - queued).total_seconds())
            hosts[ti.get("hostname") or "?"] += 1
    result = api.xcom(DAG_ID, runs[-1], "end_round")
    bucket, _, key = result["results_uri"].removeprefix("s3://").partition("/")
    board = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=f"{key}/leaderboard.json")["Body"].read())
    return {"wall_s": wall, "runs": len(runs), "tasks": tasks, "board": board,
            "queued_to_start_s": statistics.median(waits) if waits else None,
            "results_dir": result["results_uri"], "tasks_per_worker": dict(hosts)}


def run(*, spec: dict[str, Any], work_dir: Path, workers: int = 2, concurrency: int = 1,
        timeout: float = 7200) -> dict[str, Any]:
    """`spec` as `experiment_sweep` on the Celery stack: the `mlfleet up` path's row
    (``wall_s``, ``runs``, ``tasks``, ``board``, ``queued_to_start_s``, ``results_dir``) plus
    ``stack_up_s`` (migrations and start-up, not in the wall; MLflow's tables exist before the sweep, as
    on the `mlfleet up` path) and ``tasks_per_worker``."""
    from mlfleet.config import Settings
    from mlfleet.devstack import celery
    from mlfleet.devstack.rest_client import ApiClient

    work = work_dir / "celery"
    services = _test_services()
    shared_state_env, create_database = services.shared_state_env, services.create_database
    with servers() as (redis_url, postgres_url, aws):
        env = shared_state_env(home=work / "home", aws=aws, prefix="bench", postgres_url=postgres_url)
        with _environment(env):
            settings = Settings()
            t0 = time.perf_counter()
            with celery.celery_stack(settings, database_url=create_database(postgres_url, "bench_airflow"),
                                     broker_url=f"redis://{redis_url}/0", workers=workers, concurrency=concurrency,
                                     worker_root=work / "workers") as stack:
                stack_up_s = time.perf_counter() - t0
                with ApiClient.login(stack.url, stack.username, stack.password) as api:
                    api.wait_for_dag(DAG_ID, timeout=180)
                    api.unpause(DAG_ID)
                    row = sweep_on_stack(api, spec, aws=aws, timeout=timeout)
    return {**row, "stack_up_s": stack_up_s, "workers": workers, "concurrency": concurrency,
            "idle_stack_cpu_per_min": None, "idle_window_s": 0.0}


def section(row: dict[str, Any], *, limit_s: float | None = None) -> str:
    """The row as run.py's section 5 words its `mlfleet up` row: wall, ratio to the limit when
    given, task durations, orchestration overhead; then what only this path has."""
    tasks = ", ".join(f"`{task}` {sum(d):.1f} s" + (f" ({len(d)} tasks)" if len(d) > 1 else "")
                      for task, d in sorted(row["tasks"].items()))
    batch = sum(row["tasks"].get("run_batch", []))
    overhead = row["wall_s"] - batch
    ratio = f" = {row['wall_s'] / limit_s:.2f}x the limit" if limit_s else ""
    workers = ", ".join(f"{name} {count}" for name, count in sorted(row["tasks_per_worker"].items()))
    wait = row.get("queued_to_start_s")
    return (f"`experiment_sweep` on the CeleryExecutor ({row['workers']} workers x concurrency {row['concurrency']}, "
            f"Redis broker, PostgreSQL metadata, sweep state in the object store on a moto server), triggered over "
            f"REST ({row['runs']} run(s), {len(row['board']['trials'])} trials): **{row['wall_s']:.1f} s**{ratio}. "
            f"Task durations (REST API): {tasks}. Orchestration overhead (wall minus the batch tasks' time) "
            f"{overhead:.1f} s = {overhead / max(batch, 1e-9):.0%} of the batch time."
            + (f" A task waits {wait:.1f} s (median) from queued to running." if wait is not None else "")
            + f" Task instances per worker: {workers}. Not in the wall: starting the stack ({row['stack_up_s']:.1f} s: "
            f"`airflow db migrate` and MLflow's tables on PostgreSQL, the components, both workers).")


def main() -> int:
    """`python benchmarks/celery_sweep.py`: the 75-fit grid through the Celery stack, printed as JSON."""
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    tmp = Path(tempfile.mkdtemp(prefix="mlfleet-bench-celery-"))
    try:
        os.environ.update({"MLFLEET_DATA_ROOTS": str(tmp), "MLFLOW_DISABLE_TELEMETRY": "true"})
        import bench_sweeps

        spec = bench_sweeps.grid_workload(tmp)
        row = run(spec={**spec, "name": f"{spec['name']}-celery"}, work_dir=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    brief = {k: v for k, v in row.items() if k != "board"}
    brief["trials"] = len(row["board"]["trials"])
    print(json.dumps(brief, indent=2, default=str))
    print(section(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
