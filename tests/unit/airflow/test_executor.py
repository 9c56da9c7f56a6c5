"""The preloading executor: what it imports before its workers fork, and what it does with a bad name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlfleet.airflow import executor


def test_the_list_is_configurable_and_empty_means_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLEET_PRELOAD_MODULES", raising=False)
    assert executor.preload_modules() == executor.PRELOAD_MODULES
    monkeypatch.setenv("MLFLEET_PRELOAD_MODULES", " json , csv,,")
    assert executor.preload_modules() == ("json", "csv")
    monkeypatch.setenv("MLFLEET_PRELOAD_MODULES", "")
    assert executor.preload_modules() == ()


def test_every_default_module_imports_and_a_missing_one_is_skipped_not_raised() -> None:
    # In a fresh interpreter, as the scheduler would: nothing of the list is imported before.
    code = (
        "import sys; from mlfleet.airflow import executor as e; "
        "assert 'mlflow' not in sys.modules; "
        "failed = e.preload(e.PRELOAD_MODULES + ('mlfleet_no_such_module',)); "
        "missing = [m for m in e.PRELOAD_MODULES if m not in sys.modules]; "
        "print(failed, missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['mlfleet_no_such_module'] []"
    assert "could not preload mlfleet_no_such_module" in out.stdout + out.stderr  # Airflow logs to stdout


# --- the heartbeat that waits for a running task to end ------------------------------------------


def _executor_with_queue() -> executor.PreloadingLocalExecutor:
    """The executor's result queue and in-flight book, without forking its workers."""
    import multiprocessing

    local = executor.PreloadingLocalExecutor(parallelism=1)
    local.result_queue = multiprocessing.SimpleQueue()
    return local


def _report_later(queue, seconds: float) -> None:  # noqa: ANN001 - a multiprocessing queue
    import time

    time.sleep(seconds)
    queue.put(("a-task", "success", None))


def test_a_heartbeat_returns_when_a_running_task_reports_and_leaves_the_result_for_sync() -> None:
    import multiprocessing
    import time

    local = _executor_with_queue()
    local.in_flight["a-task"] = None  # sent to a worker, no result yet
    reporter = multiprocessing.get_context("fork").Process(target=_report_later, args=(local.result_queue, 0.3))
    reporter.start()
    started = time.monotonic()
    assert local.wait_for_a_result(60) is True
    assert time.monotonic() - started < 30  # woken by the result, not by the 60 s timeout
    reporter.join()
    assert not local.result_queue.empty(), "the wait consumed the result"
    assert local.result_queue.get() == ("a-task", "success", None)  # still there for _read_results


def test_nothing_waits_without_a_running_task_or_with_work_queued() -> None:
    import time

    local = _executor_with_queue()
    started = time.monotonic()
    assert local.wait_for_a_result(60) is False  # nothing in flight: the scheduler's own idle sleep applies
    local.in_flight["a-task"] = None
    local.queued_tasks["another"] = object()  # queued work goes to the workers first
    assert local.wait_for_a_result(60) is False
    assert time.monotonic() - started < 30


def test_a_final_state_ends_the_wait_for_that_task_and_a_started_one_does_not() -> None:
    local = _executor_with_queue()
    local.in_flight.update({"task": None, "callback": "running", "probe": "running"})
    local.change_state("callback", "running")  # a callback's worker reports that it started
    local.change_state("task", "success")
    assert local.in_flight == {"callback": "running", "probe": "running"}
    local.change_state("callback", "success")
    local.fail_connection_test("probe")  # the reaper gave up on a connection test: no result will come
    assert local.in_flight == {}
    assert local.event_buffer["task"] == ("success", None)  # Airflow's own bookkeeping still happens


def test_the_wait_is_configurable_and_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLEET_EXECUTOR_RESULT_WAIT_SECONDS", "0")
    monkeypatch.setenv("MLFLEET_EXECUTOR_IDLE_WAIT_SECONDS", "0.5")
    monkeypatch.setenv("MLFLEET_EXECUTOR_QUIET_AFTER_SECONDS", "7")
    assert executor.wait_settings() == (0, 0.5, 7)
    local = _executor_with_queue()
    assert (local.result_wait_s, local.idle_wait_s, local.quiet_after_s) == (0, 0.5, 7)
    local.in_flight["a-task"] = None
    assert local.wait_for_a_result(local.result_wait_s) is False
    for name in ("RESULT_WAIT", "IDLE_WAIT", "QUIET_AFTER"):
        monkeypatch.delenv(f"MLFLEET_EXECUTOR_{name}_SECONDS")
    assert executor.wait_settings() == (2.0, 1.0, 30.0)


# --- the rest a quiet stack takes -----------------------------------------------------------------


def test_a_quiet_stack_rests_and_any_work_keeps_it_awake() -> None:
    import time

    local = _executor_with_queue()
    local.idle_wait_s, local.quiet_after_s = 0.2, 5.0
    assert local.rest_while_quiet() == 0.0  # just started: not quiet for 5 s yet
    local.last_busy = time.monotonic() - 6
    started = time.monotonic()
    assert local.rest_while_quiet() == 0.2
    assert time.monotonic() - started >= 0.2  # it did sleep
    local.queued_tasks["a-task"] = object()  # work queued: no rest, and the quiet clock starts again
    assert local.rest_while_quiet() == 0.0
    del local.queued_tasks["a-task"]
    assert local.rest_while_quiet() == 0.0  # busy a moment ago
    local.last_busy = time.monotonic() - 6
    local.in_flight["a-task"] = None  # running: the result wait applies instead
    assert local.rest_while_quiet() == 0.0
    assert time.monotonic() - local.last_busy < 1
    local.in_flight.clear()
    local.last_busy, local.idle_wait_s = time.monotonic() - 6, 0.0
    assert local.rest_while_quiet() == 0.0  # 0 turns it off


def test_sync_rests_only_when_no_result_came(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.executors.local_executor import LocalExecutor

    local = _executor_with_queue()
    calls = []
    monkeypatch.setattr(LocalExecutor, "sync", lambda self: calls.append("airflow sync"))
    monkeypatch.setattr(local, "rest_while_quiet", lambda: calls.append("rest") or 0.0)
    monkeypatch.setattr(local, "wait_for_a_result", lambda timeout: calls.append(f"wait {timeout}") or True)
    local.sync()
    assert calls == [f"wait {local.result_wait_s}", "airflow sync"]
    calls.clear()
    monkeypatch.setattr(local, "wait_for_a_result", lambda timeout: False)
    local.sync()
    assert calls == ["rest", "airflow sync"]


class _Worker:
    def __init__(self, alive: bool) -> None:
        self.alive = alive

    def is_alive(self) -> bool:
        return self.alive


def test_a_dead_worker_empties_the_book_and_live_ones_leave_it() -> None:
    local = _executor_with_queue()
    local.workers = {101: _Worker(True), 102: _Worker(True)}
    local.in_flight.update({"a-task": None, "another": None})
    assert local.forget_what_a_dead_worker_held() is False
    assert set(local.in_flight) == {"a-task", "another"}
    local.workers[102].alive = False  # killed mid-task: it will never report
    assert local.forget_what_a_dead_worker_held() is True
    assert local.in_flight == {}
    assert local.wait_for_a_result(60) is False  # so nothing waits for it
