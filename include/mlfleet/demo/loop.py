"""The demo: the whole loop through real Airflow runs, as a data team would see it.

events (seeded) -> feature_pipeline (the weeks before the shift) -> experiment_sweep (champion)
-> feature_pipeline (the weeks after) -> drift_monitor -> retrain -> promotion decision.

Each DAG runs with `airflow dags test` against the same metadata DB `mlfleet up` serves, so the
runs show in the Airflow UI afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

from mlfleet.config import PROJECT_ROOT, Settings

DEMO_SPEC = "specs/churn-baseline.yaml"


def sweep_conf() -> dict[str, Any]:
    """The demo's sweep: a project spec file, named the way the trigger form names one."""
    return {"spec_file": DEMO_SPEC}


def run_dag(settings: Settings, dag_id: str, *, conf: dict[str, Any], logical_date: str | None = None,
            log: Path) -> None:
    """`airflow dags test` one DAG run; raises with the log path when the run fails."""
    from mlfleet.devstack.stack import airflow_env

    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if logical_date:
        command.append(logical_date)
    command += ["-c", json.dumps(conf)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        proc = subprocess.run(command, env=airflow_env(settings), cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT, check=False)
    text = log.read_text()
    if proc.returncode != 0 or "state=failed" in text or "DagRun Finished" not in text:
        raise RuntimeError(f"DAG {dag_id} did not succeed; see {log}")


def run_triggered(settings: Settings, dag_id: str, *, timeout: float = 900) -> str:
    """Start local Airflow and let its scheduler run the DAG's queued (triggered) sweeps to their end,
    continuation rounds included."""
    from mlfleet.devstack import stack
    from mlfleet.devstack.rest_client import ApiClient

    info = stack.up(settings)
    with ApiClient.login(info["url"], info["username"], info["password"]) as api:
        api.wait_for_dag(dag_id, timeout=120)
        queued = api.dag_runs(dag_id, state="queued")
        if not queued:
            raise RuntimeError(f"no queued {dag_id} run to wait for")
        api.unpause(dag_id)
        states = [api.wait_for_sweep(dag_id, run["dag_run_id"], timeout=timeout)[1] for run in queued]
    if any(state != "success" for state in states):
        raise RuntimeError(f"{dag_id} run failed; see the Airflow UI at {info['url']} or {info['logs']}")
    return states[-1]


def migrate(settings: Settings) -> None:
    """Migrate the metadata DB the demo's `airflow dags test` runs share with `mlfleet up`."""
    from mlfleet.devstack import stack

    stack.migrate(settings)


def run_demo(settings: Settings, *, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole loop; returns the leaderboard, the drift report and the retrain decision."""
    from mlfleet import results
    from mlfleet.demo import events

    logs = settings.home_dir / "logs" / "demo"
    say("generating raw events ...")
    raw = events.generate_demo_raw_zone(settings)
    say(f"  {raw['events']} events, {raw['start']} .. {raw['end']} (distribution shift from day {settings.demo_shift_day})")
    migrate(settings)
    start = date.fromisoformat(settings.demo_start)
    shift = start + timedelta(days=settings.demo_shift_day)
    last = start + timedelta(days=settings.demo_days - 1)

    say(f"feature_pipeline {start} .. {shift - timedelta(days=1)} (Spark, feast apply, materialize) ...")
    run_dag(settings, "feature_pipeline", conf={"start": str(start), "end": str(shift - timedelta(days=1))},
            logical_date=str(shift - timedelta(days=1)), log=logs / "1-feature_pipeline.log")
    say(f"experiment_sweep {DEMO_SPEC} ...")
    run_dag(settings, "experiment_sweep", conf=sweep_conf(), log=logs / "2-experiment_sweep.log")
    say(f"feature_pipeline {shift} .. {last} (new data arrives) ...")
    run_dag(settings, "feature_pipeline", conf={"start": str(shift), "end": str(last)},
            logical_date=str(last), log=logs / "3-feature_pipeline.log")
    say("drift_monitor ...")
    run_dag(settings, "drift_monitor", conf={}, log=logs / "4-drift_monitor.log")
    name = "churn-baseline"
    report = _newest_json(settings.drift_dir / name)
    decision = None
    if report and report["drift"]:
        say(f"  drift in {report['drifted_features']}: drift_monitor triggered retrain")
        say("starting Airflow (mlfleet up); its scheduler runs the triggered retrain ...")
        run_triggered(settings, "retrain")
        decision = _newest_json(settings.decisions_dir / name)
    board = results.read_leaderboard(_first_sweep(settings, name))
    return {"leaderboard": board, "drift": report, "decision": decision, "logs": str(logs)}


def _first_sweep(settings: Settings, name: str) -> Path:
    runs = sorted(p for p in (settings.experiments_dir / name).iterdir() if (p / "leaderboard.json").is_file())
    for run in runs:
        if not (run / "decision.json").exists():
            return run
    return runs[-1]


def _newest_json(directory: Path) -> dict[str, Any] | None:
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    return {**json.loads(files[-1].read_text()), "report_path": str(files[-1])} if files else None
