"""The local backend: run the training entrypoint in a subprocess, rooted in a per-batch directory.

The subprocess is the same entrypoint a SageMaker job or a pod runs, with the same directory
layout, so the local backend exercises the container contract on every sweep.

Where it is safe, the training process is forked from this one rather than started as a new
interpreter: a task process of `mlfleet up`'s executor already holds pandas, pyarrow and
scikit-learn (mlfleet.airflow.executor), and a new interpreter spends about 3.5 s importing them
again before its first fit (2 cores, 2026-12-02). Forking is safe only from a process with one
thread: a child forked after its parent ran an OpenMP fit (XGBoost, HistGradientBoosting,
LightGBM) hangs in its own first fit (measured), and a multi-threaded fork is unsafe in general.
A process with other threads, or `MLFLEET_LOCAL_TRAINING_START=exec`, starts the interpreter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from mlfleet.forking import can_fork, detach_from_parent
from mlfleet.training.entrypoint import stage_job

log = logging.getLogger(__name__)

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
        # Joined: a forked training process's title reads back split at every space.
        mine = str(batch_dir) in " ".join(proc.cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    if not mine:  # the pid was reused by an unrelated process
        return None
    proc.kill()
    proc.wait(timeout=30)
    return pid


def run_batch(batch_dir: Path, *, trial_ids: list[str], workers: int, timeout_seconds: float,
              start: Literal["auto", "exec"] = "auto") -> list[dict[str, Any]]:
    """Run (or reuse) one batch; raises RuntimeError with the failure file's first line.

    ``start``: "auto" forks the training process where that is safe (see the module docstring),
    "exec" always starts a new interpreter.
    """
    done = finished_rows(batch_dir, trial_ids)
    if done is not None:
        return done
    (batch_dir / "output/failure").unlink(missing_ok=True)
    env = {**os.environ, "MLFLEET_WORKERS": str(workers), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(batch_dir)]
    log_path = batch_dir / "output/train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stop_orphan(batch_dir)
    if start == "auto" and can_fork():
        returncode = _run_forked(batch_dir, command=command, env=env, log_path=log_path, timeout_seconds=timeout_seconds)
    else:
        returncode = _run_exec(batch_dir, command=command, env=env, log_path=log_path, timeout_seconds=timeout_seconds)
    if returncode != 0:
        failure = batch_dir / "output/failure"
        reason = failure.read_text().splitlines()[0] if failure.is_file() else f"exit status {returncode}"
        raise RuntimeError(f"batch {batch_dir.name} failed: {reason} (log: {log_path})")
    return json.loads((batch_dir / "model/results.json").read_text())


def _timed_out(batch_dir: Path, timeout_seconds: float) -> RuntimeError:
    return RuntimeError(f"batch {batch_dir.name} exceeded budget.timeout_minutes ({timeout_seconds / 60:.1f} min)")


def _run_exec(batch_dir: Path, *, command: list[str], env: dict[str, str], log_path: Path,
              timeout_seconds: float) -> int:
    """The entrypoint in a new interpreter (`python -m mlfleet.training.entrypoint`)."""
    with log_path.open("a") as log_file:
        proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        (batch_dir / PID_FILE).write_text(str(proc.pid))
        log.info("batch %s: training process %s started (a new interpreter)", batch_dir.name, proc.pid)
        try:
            return proc.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise _timed_out(batch_dir, timeout_seconds) from None


def _run_forked(batch_dir: Path, *, command: list[str], env: dict[str, str], log_path: Path,
                timeout_seconds: float) -> int:
    """The entrypoint in a fork of this process: the same code, without importing it again.

    A bare `os.fork`, not multiprocessing's Process: that one is joined at interpreter exit, so a
    task process terminated while it waits would hang on the training process instead of exiting.
    """
    import psutil

    pid = os.fork()
    if pid == 0:  # the child never returns from here
        code = 1
        try:
            code = _train_in_fork(command, env, str(log_path))
        except BaseException:  # noqa: BLE001 - reported in the batch's log, as an interpreter would
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    (batch_dir / PID_FILE).write_text(str(pid))
    log.info("batch %s: training process %s forked from this one", batch_dir.name, pid)
    proc = psutil.Process(pid)
    try:
        return int(proc.wait(timeout=timeout_seconds))
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise _timed_out(batch_dir, timeout_seconds) from None


def _train_in_fork(command: list[str], env: dict[str, str], log_path: str) -> int:
    """In the forked child: become the process `command` would have started, then train; the exit code.

    The child drops what it inherited from its parent: signal handlers (an Airflow task's SIGTERM
    handler), output (an Airflow task's stdout is its log stream) and logging handlers (which may
    write to the task supervisor's socket). Its command line reads as `command`, which is what
    `stop_orphan` and `ps` look for.
    """
    import setproctitle
    from joblib.externals.loky import reusable_executor

    from mlfleet.training.entrypoint import main

    detach_from_parent(log_path)
    os.environ.clear()
    os.environ.update(env)
    setproctitle.setproctitle(" ".join(command))
    try:
        return main(command[command.index("train"):])
    finally:
        # The child ends in os._exit (no atexit), so its pool's workers are stopped here.
        if reusable_executor._executor is not None:
            reusable_executor._executor.shutdown(wait=True)
