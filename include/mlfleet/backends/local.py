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

The training process dies with its batch, as a SageMaker job or a pod does: it leads a process
group of its own (its fold workers are in it), which `stop_trainers` (the batch operator's
`on_kill`) and a caller interrupted while it waits kill whole; it has a deadline of its own, the
spec's `budget.timeout_minutes` armed as an alarm in the process itself (the kernel ends it then,
whatever it is doing, even with nobody waiting for it); and on Linux it dies when the process
that started it dies (`PR_SET_PDEATHSIG`), so a task process killed with SIGKILL takes it along.
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
from pathlib import Path
from typing import Any, Literal

from mlfleet.backends.training_env import training_env
from mlfleet.forking import can_fork, detach_from_parent, die_with_parent
from mlfleet.training.entrypoint import stage_job

log = logging.getLogger(__name__)

# The training process of the batch's current attempt, so a retry can stop one left running.
PID_FILE = "output/train.pid"
# How long past its own deadline (its alarm) the caller waits before it kills the training process itself.
DEADLINE_GRACE_SECONDS = 10.0
# The training processes this process started and has not reaped: each leads its own process group.
_TRAINERS: set[int] = set()
# A new interpreter's first lines before it becomes the entrypoint: os.execv keeps its pid, its
# process group, the parent-death signal and the alarm. argv: parent pid, deadline (s), command.
_EXEC_GUARD = (
    "import os, signal, sys\n"
    "from mlfleet.forking import die_with_parent\n"
    "die_with_parent()\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "signal.alarm(int(sys.argv[2]))\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


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
        # Joined: a forked training process's title reads back split at every space.
        mine = str(batch_dir) in " ".join(proc.cmdline())
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
              start: Literal["auto", "exec"] = "auto") -> list[dict[str, Any]]:
    """Run (or reuse) one batch; raises RuntimeError with the failure file's first line.

    ``start``: "auto" forks the training process where that is safe (see the module docstring),
    "exec" always starts a new interpreter. ``timeout_seconds`` is the training process's own
    deadline; one that reaches it ends with "timed out" as its failure file's first line.
    """
    done = finished_rows(batch_dir, trial_ids)
    if done is not None:
        return done
    (batch_dir / "output/failure").unlink(missing_ok=True)
    env = training_env(os.environ, MLFLEET_WORKERS=str(workers), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "mlfleet.training.entrypoint", "train", "--root", str(batch_dir)]
    log_path = batch_dir / "output/train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stop_orphan(batch_dir)
    if start == "auto" and can_fork():
        returncode = _run_forked(batch_dir, command=command, env=env, log_path=log_path, timeout_seconds=timeout_seconds)
    else:
        returncode = _run_exec(batch_dir, command=command, env=env, log_path=log_path, timeout_seconds=timeout_seconds)
    if returncode == -signal.SIGALRM:  # its own deadline ended it
        raise _timed_out(batch_dir, timeout_seconds)
    if returncode != 0:
        failure = batch_dir / "output/failure"
        reason = failure.read_text().splitlines()[0] if failure.is_file() else f"exit status {returncode}"
        raise RuntimeError(f"batch {batch_dir.name} failed: {reason} (log: {log_path})")
    return json.loads((batch_dir / "model/results.json").read_text())


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
    """The training process has ended (or this process stops waiting for it): stop what is left of its group."""
    _TRAINERS.discard(pid)
    _kill_group(pid)


def _run_exec(batch_dir: Path, *, command: list[str], env: dict[str, str], log_path: Path,
              timeout_seconds: float) -> int:
    """The entrypoint in a new interpreter (`python -m mlfleet.training.entrypoint`).

    The interpreter first runs `_EXEC_GUARD` (parent-death signal, alarm), then execs the
    entrypoint: `preexec_fn` would do the same before the exec, but is unsafe in a process with
    threads, which is why this one starts an interpreter at all.
    """
    guard = [sys.executable, "-c", _EXEC_GUARD, str(os.getpid()), str(_deadline(timeout_seconds)), *command]
    with log_path.open("a") as log_file:
        proc = subprocess.Popen(guard, env=env, stdout=log_file, stderr=subprocess.STDOUT, process_group=0)
        try:
            _started(batch_dir, proc.pid)
            log.info("batch %s: training process %s started (a new interpreter)", batch_dir.name, proc.pid)
            try:
                return proc.wait(timeout=timeout_seconds + DEADLINE_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                raise _timed_out(batch_dir, timeout_seconds) from None
        finally:
            _reaped(proc.pid)  # also when this wait is interrupted (SIGINT, a SIGTERM handler's SystemExit)


def _run_forked(batch_dir: Path, *, command: list[str], env: dict[str, str], log_path: Path,
                timeout_seconds: float) -> int:
    """The entrypoint in a fork of this process: the same code, without importing it again.

    A bare `os.fork`, not multiprocessing's Process: that one is joined at interpreter exit, so a
    task process terminated while it waits would hang on the training process instead of exiting.
    """
    import psutil

    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        code = 1
        try:
            _guard_child(parent, _deadline(timeout_seconds))
            code = _train_in_fork(command, env, str(log_path))
        except BaseException:  # noqa: BLE001 - reported in the batch's log, as an interpreter would
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    with contextlib.suppress(OSError):  # as the child does: the group exists once fork returns here
        os.setpgid(pid, pid)
    try:
        _started(batch_dir, pid)
        log.info("batch %s: training process %s forked from this one", batch_dir.name, pid)
        proc = psutil.Process(pid)
        try:
            return int(proc.wait(timeout=timeout_seconds + DEADLINE_GRACE_SECONDS))
        except psutil.TimeoutExpired:
            _kill_group(pid)
            proc.wait()
            raise _timed_out(batch_dir, timeout_seconds) from None
    finally:
        _reaped(pid)


def _guard_child(parent: int, deadline: int) -> None:
    """In the forked child, first: its own process group, death with `parent`, and its alarm at `deadline` s.

    SIGALRM's default action ends the process in the kernel, whatever Python or a C fit is doing;
    the handler an Airflow task may have installed for its execution_timeout is dropped first.
    """
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(deadline)


def _train_in_fork(command: list[str], env: dict[str, str], log_path: str) -> int:
    """In the forked child: become the process `command` would have started, then train; the exit code.

    The child drops what it inherited from its parent: signal handlers (an Airflow task's SIGTERM
    handler), output (an Airflow task's stdout is its log stream) and logging handlers (which may
    write to the task supervisor's socket). Its command line reads as `command`, which is what
    `stop_orphan` and `ps` look for. It ends in os._exit (no atexit): fold workers still running
    then (a loky pool's) are stopped with its process group by the parent (`_reaped`).
    """
    import setproctitle

    from mlfleet.training.entrypoint import main

    detach_from_parent(log_path)
    os.environ.clear()
    os.environ.update(env)
    setproctitle.setproctitle(" ".join(command))
    return main(command[command.index("train"):])
