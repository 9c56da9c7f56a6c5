"""`make bench-data`: the data half at 100 k, 1 M and 10 M events, each stage beside what a user could do by hand.

For each size: the demo generator (seed 7, 84 days, the shift on day 49) with as many customers as
give that many events; `feast apply`; then, each in its own process, timed (wall and the stage's own
work) with the peak RSS of its whole process tree:

    feature job     mlfleet's PySpark job (every view's transformation, labels)  vs  benchmarks/bare_feature_job.py
    materialize     repository.materialize of the 49 days                        vs  DuckDB newest rows, one Feast write per view
    training set    Feast through the configured offline store                   vs  a DuckDB ASOF join of the same rows
    drift           the drift check over the newest 7 days                       vs  numpy over the same window
    online reads    SQLite (the default) and Redis (feature_store.production.yaml)

and writes docs/benchmarks-data.md. `BENCH_DATA_SCALES=100k,1M` limits the sizes (for iterating).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_machine import machine_info  # noqa: E402

DOC = ROOT / "docs" / "benchmarks-data.md"
SCALES = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
EVENTS_PER_CUSTOMER = 1_304_524 / 40_000  # what the demo generator gives over its default 84 days
START, END = "2026-08-01", "2026-09-18"  # the demo's first feature_pipeline interval: 49 days
PAIRS = [("feature job", "feature-job", "bare-feature-job"), ("materialize", "materialize", "bulk-newest"),
         ("training set", "training-set", "duckdb-asof"), ("drift check", "drift", "numpy-drift")]
TARGETS = {"feature job": 1.5, "materialize": 1.5, "training set": 2.0}
PY = sys.executable


def say(message: str) -> None:
    print(f"[bench-data] {message}", file=sys.stderr, flush=True)


def tree_rss(parent: Any) -> int:
    """The RSS of a process tree, each address space once.

    A child with its parent's command line has not exec'd yet: the JVM starts `chmod` and friends
    through posix_spawn, whose child shares the JVM's memory until it execs, so its RSS is the
    JVM's a second time (a 1.4 GB JVM read as 2.5 GB at the wrong 50 ms). It is left out."""
    import psutil

    total = 0
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            if proc is not parent and proc.cmdline() == psutil.Process(proc.ppid()).cmdline():
                continue
            total += proc.memory_info().rss
    return total


def run(command: list[str], *, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one stage; wall seconds, the peak RSS of its process tree (sampled every 50 ms), its JSON line."""
    import psutil

    began = time.perf_counter()
    with log.open("a") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=out, text=True)
        parent, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, tree_rss(parent))
            time.sleep(0.05)
        stdout = proc.stdout.read() if proc.stdout else ""
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({proc.returncode}); see {log}")
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    result = lines[-1] if lines else {}
    return {**result, "wall": wall, "seconds": float(result.get("seconds", wall)), "peak_rss_mb": peak / 2**20}


def apply(env: dict[str, str], log: Path) -> None:
    """`feast apply` of the repo, as feature_pipeline's first task does (the registry, the online tables)."""
    run([PY, "-c", "from mlfleet.config import get_settings; from mlfleet.features import repository; "
                   "repository.apply(get_settings())"], env=env, log=log)


def empty_online_store(path: Path) -> None:
    """Delete every row of the SQLite online store, keeping the tables `feast apply` created."""
    import sqlite3

    with sqlite3.connect(path) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            db.execute(f'DELETE FROM "{name}"')


def stage(name: str, home: Path, env: dict[str, str], log: Path, *extra: str) -> dict[str, Any]:
    return run([PY, str(ROOT / "benchmarks" / "data_stages.py"), name, "--home", str(home), "--start", START,
                "--end", END, "--drift-end", END, *extra], env=env, log=log)


def measure_scale(label: str, events: int, work: Path) -> dict[str, Any]:
    home = work / label / "home"
    log = work / label / "stages.log"
    home.mkdir(parents=True)
    env = {**os.environ, "MLFLEET_HOME": str(home), "PYTHONPATH": str(ROOT / "include"),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    customers = max(1, round(events / EVENTS_PER_CUSTOMER))
    say(f"{label}: generating {customers} customers ...")
    generated = run([PY, "-m", "mlfleet.demo.events", "--customers", str(customers), "--days", "84", "--start", START,
                     "--shift-day", "49", "--seed", "7", "--out", str(home / "raw" / "events")], env=env, log=log)
    apply(env, log)
    out: dict[str, Any] = {"customers": customers, "events": generated.get("events", events), "stages": {}}
    say(f"{label}: {out['events']} events; feature jobs ...")
    job = [PY, str(ROOT / "include" / "mlfleet" / "etl" / "feature_job.py"), "--start", START, "--end", END,
           "--raw", str(home / "raw" / "events"), "--offline", str(home / "offline"), "--feature-repo",
           str(ROOT / "feature_repo"), "--home", str(home), "--feature-root", str(home)]
    out["stages"]["feature-job"] = run(job, env=env, log=log)
    out["stages"]["bare-feature-job"] = run([PY, str(ROOT / "benchmarks" / "bare_feature_job.py"), "--raw",
                                             str(home / "raw" / "events"), "--out", str(work / label / "bare"),
                                             "--start", START, "--end", END], env=env, log=log)
    for name in ("bulk-newest", "materialize", "training-set", "duckdb-asof", "drift", "numpy-drift"):
        if name in ("bulk-newest", "materialize"):
            empty_online_store(home / "feast" / "online_store.db")  # both write into empty tables
        say(f"{label}: {name} ...")
        out["stages"][name] = stage(name, home, env, log)
    out["stages"]["online-read-sqlite"] = stage("online-read", home, env, log, "--customers", str(customers))
    out["stages"].update(redis_stages(home, work / label, env, log, customers))
    return out


def redis_stages(home: Path, work: Path, env: dict[str, str], log: Path, customers: int) -> dict[str, Any]:
    """Production's online store: a real redis-server, materialized through feature_store.production.yaml."""
    redis = shutil.which("redis-server") or "/usr/bin/redis-server"
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prod = work / "prod-home"
    prod.mkdir()
    for part in ("raw", "offline"):
        (prod / part).symlink_to(home / part)
    env = {**env, "MLFLEET_HOME": str(prod), "MLFLEET_FEAST_CONFIG": "feature_store.production.yaml",
           "MLFLEET_REDIS_CONNECTION": f"127.0.0.1:{port}"}
    try:
        time.sleep(0.5)
        apply(env, log)
        return {"materialize-redis": stage("materialize", prod, env, log),
                "online-read-redis": stage("online-read", prod, env, log, "--customers", str(customers))}
    finally:
        server.terminate()
        server.wait(timeout=10)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def _mib(result: dict[str, Any]) -> str:
    return f"{result['peak_rss_mb']:,.0f}"


def _seconds(pair: str, result: dict[str, Any]) -> float:
    """The feature jobs compare whole processes (Spark's start is part of a job); the rest their work."""
    return result["wall"] if pair == "feature job" else result["seconds"]


def report(results: dict[str, Any], machine: dict[str, str]) -> str:
    from run import table

    lines = ["# Data-path benchmarks (`make bench-data`)", "",
             "Written by benchmarks/data_bench.py; every figure below was measured in the run this page records.",
             "Seconds are each stage's own work after its imports (the feature jobs: the whole process, Spark's",
             "start included); peak RSS is the stage's whole process tree (the Spark JVM included).", "",
             table(["", ""], [[k, v] for k, v in machine.items()]), ""]
    for label, scale in results.items():
        stages = scale["stages"]
        rows = []
        for pair, mine, hand in PAIRS:
            a, b = stages[mine], stages[hand]
            target = TARGETS.get(pair)
            rows.append([pair, f"{_seconds(pair, a):.2f}", f"{_seconds(pair, b):.2f}", _ratio(_seconds(pair, a), _seconds(pair, b)),
                         f"<= {target}x" if target else "", f"{a['wall']:.1f}", _mib(a), _mib(b)])
        lines += [f"## {label} events ({scale['events']:,} events, {scale['customers']:,} customers)", "",
                  table(["stage", "mlfleet s", "by hand s", "ratio", "target", "mlfleet wall s", "mlfleet peak MiB",
                         "by hand peak MiB"], rows), ""]
        rows = [["materialize (production: Spark offline store, Redis)", f"{stages['materialize-redis']['seconds']:.2f}",
                 f"{stages['materialize-redis']['wall']:.1f}", _mib(stages["materialize-redis"])]]
        lines += [table(["other stage", "s", "wall s", "peak MiB"], rows), ""]
        online = [[store, *(f"{stages[f'online-read-{store}'][k]:.2f}" for k in ("p50_1_ms", "p99_1_ms", "p50_100_ms", "p99_100_ms"))]
                  for store in ("sqlite", "redis")]
        lines += [table(["online store", "1 entity p50 ms", "1 entity p99 ms", "100 entities p50 ms", "100 entities p99 ms"],
                        online), ""]
        same = stages["duckdb-asof"].get("same_as_mlfleet")
        lines += [f"The DuckDB ASOF join gave the same rows and values as mlfleet's training set: {same}.", ""]
    labels = list(results)
    if len(labels) > 1:
        rows = []
        for pair, mine, _ in PAIRS + [("materialize (Redis)", "materialize-redis", "")]:
            growth = [_ratio(_seconds(pair, results[b]["stages"][mine]), _seconds(pair, results[a]["stages"][mine]))
                      for a, b in zip(labels, labels[1:])]
            rows.append([pair, *growth])
        lines += ["## Growth per 10x data (mlfleet's seconds at the larger size over the smaller)", "",
                  table(["stage", *(f"{b} / {a}" for a, b in zip(labels, labels[1:]))], rows), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    wanted = [s.strip() for s in os.environ.get("BENCH_DATA_SCALES", ",".join(SCALES)).split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCALES]
    if unknown:
        raise SystemExit(f"BENCH_DATA_SCALES: unknown size(s) {unknown}; choose from {list(SCALES)}")
    machine = machine_info(root=ROOT)
    work = Path(tempfile.mkdtemp(prefix="mlfleet-bench-data-"))
    results: dict[str, Any] = {}
    try:
        for label in wanted:
            results[label] = measure_scale(label, SCALES[label], work)
            (work / "results.json").write_text(json.dumps(results, indent=1))
            # the page after every size: a larger size that fails still leaves the smaller ones measured
            page = report(results, machine)
            missing = [name for name in SCALES if name not in results]
            if missing:  # a partial run says so on the page rather than passing for the whole benchmark
                page += f"\nNot measured in this run: {', '.join(missing)}.\n"
            DOC.write_text(page + PLAN_NOTE)
            say(f"wrote {DOC}")
        print(page)
    finally:
        if not os.environ.get("BENCH_DATA_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


# The 100 M plan is on paper: its figures are read off the measured growth in the tables above.
PLAN_NOTE = """
## 100 M events, on paper

[data-scale.md](data-scale.md) plans it (EMR Serverless for the feature job, Redis online, the
object store for tables and statistics), extrapolating the growth measured above.
"""


if __name__ == "__main__":
    main()
