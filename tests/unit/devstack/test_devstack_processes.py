"""Process groups of the local Airflow, with real processes standing in for the components.

The stand-ins are small Python programs whose command line contains "airflow-stand-in", which is
all ``pid_alive`` asks of an Airflow process besides running under our user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from mlfleet.config import Settings
from mlfleet.devstack import processes

MARKER = "airflow-stand-in"
# A task process: writes its pid to argv[1] once its SIGTERM disposition is set, then sleeps.
TASK = """
import os, pathlib, signal, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(120)
"""
# A component: starts one task process in its own group, then sleeps or ("exit") leaves it behind.
COMPONENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3], "airflow-stand-in"])
if sys.argv[4] == "exit":
    sys.exit(0)
time.sleep(120)
"""
# A parent that starts the component in a new session and never reaps it: a zombie leader.
NEGLECTFUL_PARENT = """
import subprocess, sys, time
leader = subprocess.Popen([sys.executable, "-c", *sys.argv[1:]], start_new_session=True)
print(leader.pid, flush=True)
time.sleep(120)
"""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie left for its (other) parent to collect."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _task_pid(ready: Path) -> int:
    _wait_for(lambda: ready.exists() and ready.read_text() != "", "the task process")
    return int(ready.read_text())


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Process groups to SIGKILL after the test, whatever it left behind."""
    groups: list[int] = []
    yield groups
    left = {str(pgid): pgid for pgid in groups if processes.group_alive(pgid)}
    processes.stop_groups(left, timeout=0.1)


def _start_component(
    settings: Settings, tmp_path: Path, cleanup: list[int], *, task: str, leader: str
) -> tuple[int, Path]:
    """A stand-in scheduler (our child, own group, pid file) with one task process."""
    ready = tmp_path / "task.pid"
    pid = processes.spawn_group(
        [sys.executable, "-c", COMPONENT, TASK, str(ready), task, leader, MARKER],
        log_file=processes.component_log(settings, "scheduler"),
        env=os.environ,
        cwd=tmp_path,
    )
    cleanup.append(pid)
    path = processes.pid_file(settings, "scheduler")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")
    return pid, ready


def test_stop_kills_the_whole_group_even_a_task_that_ignores_sigterm(
    settings: Settings, tmp_path: Path, cleanup: list[int]
) -> None:
    leader, ready = _start_component(settings, tmp_path, cleanup, task="stubborn", leader="stay")
    task = _task_pid(ready)
    assert processes.status(settings) == {c: c == "scheduler" for c in processes.COMPONENTS}
    assert {p.pid for p in processes.group_members(leader)} == {leader, task}

    assert processes.stop(settings, processes.COMPONENTS, timeout=0.5) == ["scheduler"]

    assert _gone(task), "the task ignored SIGTERM and should have been killed"
    # The leader was our child: it is reaped, not left as a zombie.
    assert not psutil.pid_exists(leader)
    assert not processes.pid_file(settings, "scheduler").exists()
    assert not any(processes.status(settings).values())
    assert processes.stop(settings, processes.COMPONENTS) == []


def test_stop_finds_the_tasks_of_a_leader_that_already_exited(
    settings: Settings, tmp_path: Path, cleanup: list[int]
) -> None:
    leader, ready = _start_component(settings, tmp_path, cleanup, task="obedient", leader="exit")
    task = _task_pid(ready)
    _wait_for(lambda: not psutil.pid_exists(leader) or _gone(leader), "the leader to exit")

    assert processes.status(settings)["scheduler"] is False  # the component itself is gone ...
    assert processes.group_alive(leader) is True  # ... but its group is not
    assert processes.stop(settings, ["scheduler"], timeout=5) == ["scheduler"]
    assert _gone(task)
    assert processes.group_alive(leader) is False


def test_a_zombie_leader_with_a_live_member_counts_as_alive(
    settings: Settings, tmp_path: Path, cleanup: list[int]
) -> None:
    ready = tmp_path / "task.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", NEGLECTFUL_PARENT, COMPONENT, TASK, str(ready), "obedient", "exit",
         MARKER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        leader = int(parent.stdout.readline())
        cleanup.append(leader)
        task = _task_pid(ready)
        _wait_for(lambda: _gone(leader), "the leader to become a zombie")
        assert psutil.Process(leader).status() == psutil.STATUS_ZOMBIE

        assert processes.pid_alive(leader) is False
        assert processes.group_alive(leader) is True
        processes.pid_file(settings, "scheduler").parent.mkdir(parents=True, exist_ok=True)
        processes.pid_file(settings, "scheduler").write_text(f"{leader}\n")
        assert processes.stop(settings, ["scheduler"], timeout=5) == ["scheduler"]
        assert _gone(task)
        assert processes.group_alive(leader) is False  # only the zombie is left
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()


def test_a_pid_file_naming_another_program_is_neither_alive_nor_signalled(
    settings: Settings, tmp_path: Path
) -> None:
    # The pid was reused by a program that is not Airflow (its command line lacks the marker).
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        processes.pid_file(settings, "api-server").parent.mkdir(parents=True, exist_ok=True)
        processes.pid_file(settings, "api-server").write_text(f"{other.pid}\n")
        assert processes.pid_alive(other.pid) is False
        assert processes.group_alive(other.pid) is False
        assert processes.status(settings)["api-server"] is False
        assert processes.stop(settings, processes.COMPONENTS, timeout=0.5) == []
        assert other.poll() is None, "stop signalled a process that is not ours"
        assert not processes.pid_file(settings, "api-server").exists()
    finally:
        other.kill()
        other.wait()


def test_unreadable_or_stale_pid_files(settings: Settings) -> None:
    path = processes.pid_file(settings, "triggerer")
    path.parent.mkdir(parents=True, exist_ok=True)
    assert processes.read_pid(settings, "triggerer") is None
    path.write_text("not a pid\n")
    assert processes.read_pid(settings, "triggerer") is None
    exited = subprocess.Popen([sys.executable, "-c", MARKER.join("''")])
    exited.wait()
    path.write_text(f"{exited.pid}\n")  # a component that died without `down`
    assert processes.read_pid(settings, "triggerer") == exited.pid
    assert processes.status(settings)["triggerer"] is False


def test_spawn_group_logs_output_and_reaps_the_child(settings: Settings, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "echo.log"
    pid = processes.spawn_group(
        [sys.executable, "-c", "print('hello from the stand-in')", MARKER],
        log_file=log_file,
        env=os.environ,
        cwd=tmp_path,
    )
    assert os.getpgid(pid) == pid  # leader of its own group (not reaped before we look)
    _wait_for(lambda: not processes.group_alive(pid), "the process to exit")
    # Reaped: no longer our child. (Not `pid_exists`: with pid_max at 32768 and a suite that
    # spawns thousands of processes, the pid can belong to someone else a moment later.)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert "hello from the stand-in" in processes.log_tail(log_file)
    assert processes.log_tail(tmp_path / "missing.log") == "(no log)"


def test_a_child_we_spawned_is_alive_before_its_command_line_shows_the_marker(
    tmp_path: Path,
) -> None:
    # Between fork and exec a child's command line is still ours (pytest's, without the marker):
    # CI once saw `group_alive` answer False there and the test above never reaped the child.
    # A child we have not reaped cannot have its pid reused, so it needs no command-line check.
    pid = processes.spawn_group(
        ["sleep", "30"], log_file=tmp_path / "sleep.log", env=os.environ, cwd=tmp_path
    )
    try:
        assert MARKER not in " ".join(psutil.Process(pid).cmdline())
        assert processes.pid_alive(pid) is True
        assert processes.group_alive(pid) is True
    finally:
        os.killpg(pid, 9)
    _wait_for(lambda: not processes.group_alive(pid), "the killed child to be reaped")
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
