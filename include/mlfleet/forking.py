"""Forking a copy of this process for work that can run beside it, where that is safe.

A fork starts in milliseconds with everything this process has imported, where a new interpreter
spends seconds importing pandas, scikit-learn or MLflow again. It is safe only from a process with
one thread (`can_fork`): a thread holding a lock at the fork leaves that lock held forever in the
child, and a child forked after an OpenMP fit hangs in its own first one (measured, see
mlfleet.backends.local). A forked child also leaves behind what belongs to its parent: an Airflow
task's signal handlers, its stdout (the task's log stream) and logging handlers that may write to
the task supervisor's socket (`detach_from_parent`).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import pickle
import signal
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)
_INHERITED_STREAMS: list[Any] = []
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def can_fork() -> bool:
    """True where this process may fork: POSIX, and no thread but this one.

    Threads are counted by the kernel (/proc/self/task), so the idle worker threads an OpenMP
    runtime keeps after a fit count too; Python's `threading` does not see those.
    """
    if not hasattr(os, "fork"):
        return False
    try:
        threads = os.listdir("/proc/self/task")
        log.debug("threads in this process: %s", len(threads))
        return len(threads) == 1
    except OSError:  # no /proc (macOS): the threads cannot be counted, so do not fork
        return False


def detach_from_parent(log_path: str) -> None:
    """In a forked child: default signal handlers, stdin from /dev/null, stdout, stderr and logging to `log_path`.

    Python's warnings go to that log too (an Airflow task routes them into its logging).
    """
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    # Kept alive: a stream object the task replaced sys.stdout with may own fd 1 or 2, and would
    # close it (by then the log file) when collected.
    _INHERITED_STREAMS.extend([sys.stdout, sys.stderr])
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    logging.captureWarnings(False)
    warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.StreamHandler(sys.stderr))


def die_with_parent() -> None:
    """Linux: the kernel kills this child when its parent dies, so no copy outlives a killed task."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ForkedCall:
    """`fn(**kwargs)` in a forked child that dies with this process; `result()` waits for its value.

    Its value (or its exception) comes back pickled through a pipe; an exception is raised here as
    it was, with the child's traceback as a note (one that does not pickle: as RuntimeError with
    it). What the child printed or logged goes to a temporary file, logged here line by line when
    it ends, so it lands in the same task log.
    """

    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        self.name = getattr(fn, "__qualname__", repr(fn))
        fd, self.log_path = tempfile.mkstemp(prefix="mlfleet-fork-", suffix=".log")
        os.close(fd)
        parent_pid = os.getpid()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(read_end)
            die_with_parent()
            if os.getppid() != parent_pid:  # the parent died before the line above took effect
                os._exit(1)
            _child(fn, kwargs, write_end, self.log_path)
        os.close(write_end)
        self.pid, self._read_end = pid, read_end
        log.info("%s: running beside this process, in process %s forked from it", self.name, pid)

    def result(self) -> Any:
        with os.fdopen(self._read_end, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self._replay_log()
        if not payload:
            raise RuntimeError(f"{self.name} in forked process {self.pid} ended with exit status {code} and no result")
        ok, value = pickle.loads(payload)
        if ok:
            return value
        text, error = value
        if error is None:  # it could not be pickled: its traceback tells what it was
            raise RuntimeError(f"{self.name} failed in forked process {self.pid}:\n{text}")
        error.add_note(f"(raised by {self.name} in forked process {self.pid}:\n{text.rstrip()})")
        raise error

    def _replay_log(self) -> None:
        path = Path(self.log_path)
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if line.strip():
                    log.info("[%s, process %s] %s", self.name, self.pid, line)
        path.unlink(missing_ok=True)


def _child(fn: Callable[..., Any], kwargs: dict[str, Any], write_end: int, log_path: str) -> None:
    code = 1
    try:
        detach_from_parent(log_path)
        try:
            payload = pickle.dumps((True, fn(**kwargs)))
            code = 0
        except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
            payload = pickle.dumps((False, (traceback.format_exc(), _picklable(err))))
            traceback.print_exc()
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _picklable(error: BaseException) -> BaseException | None:
    """`error` if it survives a round trip through pickle (the parent raises it as it is), else None."""
    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - an exception whose arguments do not pickle
        return None
    return copy if type(copy) is type(error) and str(copy) == str(error) else None


def in_fork(fn: Callable[..., Any], **kwargs: Any) -> Callable[[], Any]:
    """Start `fn(**kwargs)` in a forked child; returns a function that waits for its value (or raises its exception).

    For a step that may leave threads behind (Arrow's thread pool after a Parquet read, a
    database's) in a process that must stay fit to fork: the child takes them when it ends.
    """
    return ForkedCall(fn, **kwargs).result


def may_fork_steps() -> bool:
    """Where a process that has imported libraries but started no thread of its own may fork (see
    mlfleet.preload): Linux, and no Python thread but this one."""
    import threading

    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


def call_beside(fn: Callable[..., Any], **kwargs: Any) -> Callable[[], Any]:
    """Start `fn(**kwargs)` in a fork where `can_fork()`; returns a function that gives its value.

    Where this process may not fork, `fn` runs when that function is called, here: the same
    result, one after the other instead of side by side.
    """
    if can_fork():
        return ForkedCall(fn, **kwargs).result
    return lambda: fn(**kwargs)


def alongside(own: Callable[[], Any], started: list[Callable[[], Any]]) -> tuple[Any, list[Any]]:
    """`own()` here while the calls `call_beside` started run; then (its value, their values).

    Every started call is collected, also when `own()` raises: then its error is the one raised.
    """
    try:
        value = own()
    except BaseException:
        for result in started:
            with contextlib.suppress(Exception):
                result()
        raise
    return value, [result() for result in started]
