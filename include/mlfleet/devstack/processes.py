"""The component processes: each the leader of its own session, with a pid file and a log file.

``down`` must stop exactly what ``up`` started, task processes included, and nothing else. A
component's process group is ours while its leader is still an Airflow process of our user, and,
once the leader is a zombie or gone, while members are left: the kernel does not reuse a pid that
is still a process group id. psutil answers the questions (status, owner, cmdline, members);
signals go to the whole group, so members started a moment ago get them too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from mlfleet.devstack.environment import logs_dir, run_dir

if TYPE_CHECKING:
    from mlfleet.config import Settings

log = logging.getLogger(__name__)

# `log-server` serves task logs on 127.0.0.1 (mlfleet.airflow.log_server) in place of the servers the
# scheduler and triggerer would start on every interface (they run with --skip-serve-logs).
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer", "log-server")
_SKIP_SERVE_LOGS = {"scheduler", "triggerer"}
STOP_TIMEOUT_S = 20.0
KILL_TIMEOUT_S = 5.0
# What a component's command line contains; anything else behind a pid file reused the pid.
_MARKER = "airflow"
_WAIT_SLICE_S = 0.5
# The components this process started: kept so they are reaped (no zombies, no "subprocess still
# running" warnings) and so ``stop`` waits on them as children, with their exit status.
_CHILDREN: dict[int, psutil.Popen] = {}


def airflow_cmd(*args: str) -> list[str]:
    """``airflow <args>`` with this interpreter's Airflow (the venv script, else ``-m airflow``)."""
    script = Path(sys.executable).parent / "airflow"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "airflow", *args]


def component_cmd(component: str) -> list[str]:
    """The command line of one component of the local deployment."""
    if component == "log-server":
        return [sys.executable, "-m", "mlfleet.airflow.log_server"]  # "airflow" in it: _MARKER holds
    if component in _SKIP_SERVE_LOGS:
        return airflow_cmd(component, "--skip-serve-logs")
    return airflow_cmd(component)


def pid_file(settings: Settings, component: str) -> Path:
    return run_dir(settings) / f"{component}.pid"


def component_log(settings: Settings, component: str) -> Path:
    return logs_dir(settings) / f"{component}.log"


def read_pid(settings: Settings, component: str) -> int | None:
    """The pid ``up`` recorded for ``component``, or None without a readable pid file."""
    try:
        return int(pid_file(settings, component).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for error messages that say why something did not start."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def spawn_group(
    command: Sequence[str], *, log_file: Path, env: Mapping[str, str], cwd: Path
) -> int:
    """Start ``command`` as the leader of a new session (its own process group); returns its pid.

    Output is appended to ``log_file``. The process stays our child, reaped by ``status``/``stop``.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as fh:
        proc = psutil.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `stop` signals the leader and its tasks
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def start(settings: Settings, component: str, env: Mapping[str, str]) -> int:
    """Start one component (`component_cmd`) in its own group and write its pid file."""
    log_file = component_log(settings, component)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as fh:
        fh.write(f"\n=== mlfleet up: starting {component} at {datetime.now():%F %T} ===\n".encode())
    pid = spawn_group(
        component_cmd(component), log_file=log_file, env=env, cwd=settings.airflow_home
    )
    path = pid_file(settings, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")
    return pid


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _is_zombie(proc: psutil.Process) -> bool:
    """Exited, waiting for its parent to collect it (a vanished process counts too)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (not a zombie), is our user's and is an Airflow process.

    Owner and command line guard against pid reuse: a pid file outlives its process, and the pid
    may belong to anything by now.
    """
    _reap(pid)
    if pid in _CHILDREN:
        # Our own child that has not exited: its pid cannot be reused before we reap it, and its
        # command line may still be ours (between fork and exec), so it is not checked.
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)  # it exited after the first look: collect it now, not on the next call
            return False
        return proc.uids().real == os.getuid() and _MARKER in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_members(pgid: int) -> list[psutil.Process]:
    """The processes of group ``pgid`` that still run; our own children as their Popen objects.

    Zombies are left out (they have exited; their parent collects them), except our children: a
    multi-threaded leader whose main thread ended shows as a zombie while its other threads run.
    """
    members: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) != pgid:
                continue
            if proc.pid in _CHILDREN or proc.status() != psutil.STATUS_ZOMBIE:
                members.append(_CHILDREN.get(proc.pid, proc))
        except (OSError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def group_alive(pgid: int) -> bool:
    """True while any process of the component's group (its tasks too) is left and is ours."""
    _reap(pgid)
    try:
        leader_runs = psutil.Process(pgid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        leader_runs = False
    if leader_runs:
        # The leader runs: the group is ours only if it is still an Airflow process (pid reuse).
        return pid_alive(pgid)
    # A zombie leader keeps its pid, and a pid still used as a group id is not reused: members
    # left are ours, e.g. task processes, or api-server workers finishing after their parent.
    if group_members(pgid):
        return True
    _reap(pgid)  # the leader may have exited between the looks above: never leave it a zombie
    return False


def status(settings: Settings) -> dict[str, bool]:
    """Which components have a live process (by pid file)."""
    result = {}
    for component in COMPONENTS:
        pid = read_pid(settings, component)
        result[component] = pid is not None and pid_alive(pid)
    return result


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _log_exit(proc: psutil.Process) -> None:
    log.debug("pid %s exited (status %s)", proc.pid, getattr(proc, "returncode", None))


def _wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for ``procs`` to exit; returns those still running.

    ``psutil.wait_procs`` reaps our children; a process that is not our child stays a zombie until
    its parent reaps it, and it has exited: it counts as gone instead of holding us to the timeout.
    """
    alive = list(procs)
    deadline = time.monotonic() + timeout
    while alive and (left := deadline - time.monotonic()) > 0:
        _, alive = psutil.wait_procs(alive, timeout=min(left, _WAIT_SLICE_S), callback=_log_exit)
        alive = [p for p in alive if p.pid in _CHILDREN or not _is_zombie(p)]
    return alive


def stop_groups(groups: Mapping[str, int], *, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM each group, wait up to ``timeout`` s, SIGKILL the groups still alive, reap leaders.

    ``groups`` maps a name (for the log) to a process group id already checked with
    ``group_alive``.
    """
    for pgid in groups.values():
        _signal_group(pgid, signal.SIGTERM)
    _wait_gone([m for pgid in groups.values() for m in group_members(pgid)], timeout)
    left = {name: pgid for name, pgid in groups.items() if group_alive(pgid)}
    for name, pgid in left.items():
        log.warning("%s did not stop within %.0f s of SIGTERM; sending SIGKILL", name, timeout)
        _signal_group(pgid, signal.SIGKILL)
    _wait_gone([m for pgid in left.values() for m in group_members(pgid)], KILL_TIMEOUT_S)
    for pgid in groups.values():
        # A multi-threaded leader shows as a zombie before it can be reaped: collect it now so no
        # pid of ours outlives `stop`.
        child = _CHILDREN.get(pgid)
        if child is not None:
            with contextlib.suppress(psutil.TimeoutExpired):
                child.wait(timeout=KILL_TIMEOUT_S)
                del _CHILDREN[pgid]


def stop(
    settings: Settings, components: Iterable[str], *, timeout: float = STOP_TIMEOUT_S
) -> list[str]:
    """Stop the given components' process groups and remove their pid files.

    Returns the components that were running. A pid file whose pid now belongs to another program
    is removed without signalling anything.
    """
    components = list(components)
    groups: dict[str, int] = {}
    for component in components:
        pid = read_pid(settings, component)
        if pid is not None and group_alive(pid):
            groups[component] = pid
    stop_groups(groups, timeout=timeout)
    for component in components:
        pid_file(settings, component).unlink(missing_ok=True)
    return list(groups)
