"""The local backend: run the training entrypoint in a subprocess, rooted in a per-batch directory.

The subprocess is the same entrypoint a SageMaker job or a pod runs (`python -m
mlfleet.training.entrypoint train --root <batch dir>`), with the same directory layout, so the
local backend exercises the container contract on every sweep. It is always a new interpreter,
started with `subprocess.Popen`: safe from a caller with threads (an Airflow task, `mlfleet sweep`,
a pytest worker), so every caller starts it the one same way.

The training process dies with its batch, as a SageMaker job or a pod does: it leads a process
group of its own (its fold workers are in it), which `stop_trainers` (the batch operator's
`on_kill`) and a caller interrupted while it waits kill whole; it has a deadline of its own, the
spec's `budget.timeout_minutes`, as an alarm the process arms itself (the kernel ends it then,
whatever it is doing, even with nobody waiting for it); and on Linux it dies when the process
that started it dies (`PR_SET_PDEATHSIG`), so a task process killed with SIGKILL takes it along.
It arms the last two from the environment this module gives it (mlfleet.training.entrypoint
`lifetime_env`), first thing in its `main`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlfleet.backends.training_env import training_env
from mlfleet.training.entrypoint import lifetime_env, stage_job

log = logging.getLogger(__name__)

# The training process of the batch's current attempt, so a retry can stop one left running.
PID_FILE = "output/train.pid"
# How long past its own deadline (its alarm) the caller waits before it kills the training process itself.
DEADLINE_GRACE_SECONDS = 10.0
# The training processes this process started and has not reaped: each leads its own process group.
_TRAINERS: set[int] = set()


def stage_batch(batch_dir: Path, *, job: dict[str, Any], data_path: Path) -> Path:
    """Lay out hyperparameters and the config and train channels exactly as SageMaker would."""
    check_training_data(batch_dir, data_path)
    stage_job(batch_dir, job)
    channel = batch_dir / "input/data/train"
    channel.mkdir(parents=True, exist_ok=True)
    link = channel / data_path.name
    if not link.exists():
        link.symlink_to(data_path.resolve())
    return batch_dir


def check_training_data(batch_dir: Path, data_path: Path) -> Path:
    """`data_path` resolved, if a batch may train on it: the rule a spec's `dataset.path` follows
    (inside MLFLEET_DATA_ROOTS, symlinks resolved), where prepare stages a sweep's set (the
    experiments folder), or in the `data` folder beside the batch's folder (where a batch copies a
    set from the object store). The path comes from a sweep's context file, so it is checked where
    it is linked in."""
    from mlfleet.config import get_settings

    settings = get_settings()
    resolved = data_path.resolve()
    roots = [*settings.allowed_data_roots, settings.experiments_dir.resolve(), (batch_dir.parent / "data").resolve()]
    if not any(resolved == root or root in resolved.parents for root in roots):
        allowed = os.pathsep.join(str(r) for r in roots)
        raise ValueError(f"data_path: {str(data_path)!r} is outside the allowed data roots and the sweeps' "
                         f"folders ({allowed}); add its folder to MLFLEET_DATA_ROOTS")
    return resolved


def finished_rows(batch_dir: Path, trial_ids: list[str]) -> list[dict[str, Any]] | None:
    """The batch's results if a previous attempt already finished every trial (a retry reuses them)."""
    path = batch_dir / "model/results.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())
    return rows if sorted(r["trial_id"] for r in rows) == sorted(trial_ids) else None


def stop_orphan(batch_dir: Path) -> int | None:
    """Kill the training process an earlier attempt of this batch left running (its whole group), and wait for it.

    A training process dies with the task process that started it (Linux), so this is the backstop
    for where it could not: without it, a retry would run beside it, two processes training the
    same trials into one checkpoint folder. Returns its pid.
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
    _kill_group(pid)
    proc.kill()
    with contextlib.suppress(psutil.Error):
        proc.wait(timeout=30)
    return pid


def stop_trainers() -> list[int]:
    """Kill the process group of every training process this process started and still waits for.

    The batch operator's `on_kill`: Airflow calls it in the task process when the task is marked
    failed or its execution_timeout fires, while `run_batch` waits; that wait then returns and the
    batch fails. Safe in a signal handler: it only sends signals. Returns the pids it stopped.
    """
    stopped = sorted(_TRAINERS)
    for pid in stopped:
        _kill_group(pid)
    if stopped:
        log.warning("stopped training process(es) %s and their workers", stopped)
    return stopped


def _kill_group(pid: int) -> None:
    """SIGKILL the process group `pid` leads (the training process and its fold workers); never our own."""
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid != os.getpgid(0):
            os.killpg(pid, signal.SIGKILL)


def run_batch(batch_dir: Path, *, trial_ids: list[str], workers: int, timeout_seconds: float,
              while_training: Callable[[], object] | None = None) -> list[dict[str, Any]]:
    """Run (or reuse) one batch; raises RuntimeError with the failure file's first line.

    ``timeout_seconds`` is the training process's own deadline; one that reaches it ends with
    "timed out" as its failure file's first line. ``while_training`` is called here once the
    training process has started, and the batch is waited for after it returns: `mlfleet sweep`
    imports what its last step needs meanwhile. The training process is stopped if it raises.
    """
    done = finished_rows(batch_dir, trial_ids)
    if done is not None:
        return done
    (batch_dir / "output/failure").unlink(missing_ok=True)
    deadline = _deadline(timeout_seconds)
    env = training_env(os.environ, MLFLEET_WORKERS=str(workers), PYTHONUNBUFFERED="1",
                       **lifetime_env(parent_pid=os.getpid(), deadline_seconds=deadline))
    command = [sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(batch_dir)]
    log_path = batch_dir / "output/train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stop_orphan(batch_dir)
    with log_path.open("a") as log_file:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                process_group=0)
    returncode = _wait(batch_dir, proc, timeout_seconds=timeout_seconds, while_training=while_training)
    if returncode == -signal.SIGALRM:  # its own deadline ended it
        raise _timed_out(batch_dir, timeout_seconds)
    if returncode != 0:
        failure = batch_dir / "output/failure"
        reason = failure.read_text().splitlines()[0] if failure.is_file() else f"exit status {returncode}"
        raise RuntimeError(f"batch {batch_dir.name} failed: {reason} (log: {log_path})")
    return json.loads((batch_dir / "model/results.json").read_text())


def _wait(batch_dir: Path, proc: subprocess.Popen[bytes], *, timeout_seconds: float,
          while_training: Callable[[], object] | None) -> int:
    """The training process's exit status; its group is stopped however this ends (an interrupt, a
    SIGTERM handler's SystemExit, `while_training` raising)."""
    give_up = time.monotonic() + timeout_seconds + DEADLINE_GRACE_SECONDS
    try:
        _started(batch_dir, proc.pid)
        log.info("batch %s: training process %s started", batch_dir.name, proc.pid)
        if while_training is not None:
            while_training()
        try:
            return proc.wait(timeout=max(0.0, give_up - time.monotonic()))
        except subprocess.TimeoutExpired:  # its alarm did not end it
            _kill_group(proc.pid)
            proc.wait()
            raise _timed_out(batch_dir, timeout_seconds) from None
    finally:
        _reaped(proc.pid)
        if proc.returncode is None:  # stopped above: collect it, so no zombie is left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _deadline(timeout_seconds: float) -> int:
    """The training process's alarm, in whole seconds (at least one: alarm(0) would cancel it)."""
    return max(1, math.ceil(timeout_seconds))


def _timed_out(batch_dir: Path, timeout_seconds: float) -> RuntimeError:
    """Record the timeout as the batch's failure (the contract's failure file); the error that says so."""
    limit = f"budget.timeout_minutes ({timeout_seconds / 60:.1f} min)"
    with contextlib.suppress(OSError):
        (batch_dir / "output/failure").write_text(f"timed out: the training process ran past {limit}\n")
    return RuntimeError(f"batch {batch_dir.name} timed out: exceeded {limit}")


def _started(batch_dir: Path, pid: int) -> None:
    (batch_dir / PID_FILE).write_text(str(pid))
    _TRAINERS.add(pid)


def _reaped(pid: int) -> None:
    """The training process has ended (or this process stops waiting for it): stop what is left of its group.

    The group is the one this process's child made (`process_group=0`), and the kernel does not
    give its number to a new process while a member lives, so it is killed by number even after
    its leader was reaped: a fold worker left behind would otherwise go unnoticed.
    """
    _TRAINERS.discard(pid)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
