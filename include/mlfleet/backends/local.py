"""The local backend: run the training entrypoint in a subprocess, rooted in a per-batch directory.

The subprocess is the same entrypoint a SageMaker job or a pod runs, with the same directory
layout, so the local backend exercises the container contract on every sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlfleet.training.entrypoint import stage_job

# The training process of the batch's current attempt, so a retry can stop one left running.
PID_FILE = "output/train.pid"


def stage_batch(batch_dir: Path, *, job: dict[str, Any], data_path: Path) -> Path:
    """Lay out hyperparameters and the config and train channels exactly as SageMaker would."""
    stage_job(batch_dir, job)
    channel = batch_dir / "input/data/train"
    channel.mkdir(parents=True, exist_ok=True)
    link = channel / data_path.name
    if not link.exists():
        link.symlink_to(data_path.resolve())
    return batch_dir


def finished_rows(batch_dir: Path, trial_ids: list[str]) -> list[dict[str, Any]] | None:
    """The batch's results if a previous attempt already finished every trial (a retry reuses them)."""
    path = batch_dir / "model/results.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())
    return rows if sorted(r["trial_id"] for r in rows) == sorted(trial_ids) else None


def stop_orphan(batch_dir: Path) -> int | None:
    """Kill the training process an earlier attempt of this batch left running, and wait for it.

    A task process killed with SIGKILL cannot take its child along: without this, a retry would run
    beside it, two processes training the same trials into one checkpoint folder. Returns its pid.
    """
    import psutil

    try:
        pid = int((batch_dir / PID_FILE).read_text())
        proc = psutil.Process(pid)
        mine = str(batch_dir) in proc.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    if not mine:  # the pid was reused by an unrelated process
        return None
    proc.kill()
    proc.wait(timeout=30)
    return pid


def run_batch(batch_dir: Path, *, trial_ids: list[str], workers: int, timeout_seconds: float) -> list[dict[str, Any]]:
    """Run (or reuse) one batch; raises RuntimeError with the failure file's first line."""
    done = finished_rows(batch_dir, trial_ids)
    if done is not None:
        return done
    (batch_dir / "output/failure").unlink(missing_ok=True)
    env = {**os.environ, "MLFLEET_WORKERS": str(workers), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(batch_dir)]
    log_path = batch_dir / "output/train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stop_orphan(batch_dir)
    with log_path.open("a") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        (batch_dir / PID_FILE).write_text(str(proc.pid))
        try:
            proc.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"batch {batch_dir.name} exceeded budget.timeout_minutes ({timeout_seconds / 60:.1f} min)") from None
    if proc.returncode != 0:
        failure = batch_dir / "output/failure"
        reason = failure.read_text().splitlines()[0] if failure.is_file() else f"exit status {proc.returncode}"
        raise RuntimeError(f"batch {batch_dir.name} failed: {reason} (log: {log_path})")
    return json.loads((batch_dir / "model/results.json").read_text())
