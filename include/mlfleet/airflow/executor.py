"""Airflow's LocalExecutor, with the libraries every mlfleet task imports loaded before it forks.

The LocalExecutor forks its worker processes from the scheduler when it starts, and each task's
supervisor forks the task process from a worker (no new interpreter), so whatever the scheduler has
imported by then every task process already has. Stock, that is Airflow alone: each `prepare`,
`run_batch` and `end_round` then imports pandas, pyarrow, scikit-learn, Optuna and MLflow itself,
on every round of every sweep. Measured on 2 cores (2026-12-02, an 8-trial random sweep through
`mlfleet up`, the second of two): `prepare` 2.9 s stock, 0.3 s preloaded; `end_round` 6.6 s and
1.9 s; the whole run 19.6 s and 10.2 s. Loading them once before the fork is gunicorn's
`preload_app`, for the same reason.

`mlfleet up` uses this executor (`AIRFLOW__CORE__EXECUTOR`); a deployment on the Celery or
Kubernetes executor gets the same from an image whose worker imports these modules before forking
(Celery's prefork pool) or not at all (a pod per task). MLFLEET_PRELOAD_MODULES replaces the list
(comma-separated; empty: preload nothing). A module that fails to import is logged and skipped:
the task that needs it will raise the error where it belongs.

While a task runs, its heartbeat also waits for the task to end (`wait_for_a_result`) instead of
returning at once: the scheduler then acts on a finished task within a loop, not after its idle
sleep, and loops less often while tasks run (why and what was measured: `wait_for_a_result`).
A stack with nothing to run for a while loops less often too (`rest_while_quiet`).
"""

from __future__ import annotations

import logging
import os
import time

from airflow.executors.local_executor import LocalExecutor

from mlfleet.preload import SWEEP_MODULES, preload

log = logging.getLogger(__name__)

# The task runtime's own modules (a new stack's first task otherwise imports them in its
# supervisor), then what a sweep's steps import.
PRELOAD_MODULES = ("airflow.sdk.execution_time.supervisor", "airflow.sdk.execution_time.task_runner", *SWEEP_MODULES)


def preload_modules() -> tuple[str, ...]:
    """MLFLEET_PRELOAD_MODULES (comma-separated) if set, else PRELOAD_MODULES."""
    configured = os.environ.get("MLFLEET_PRELOAD_MODULES")
    if configured is None:
        return PRELOAD_MODULES
    return tuple(name.strip() for name in configured.split(",") if name.strip())


def wait_settings() -> tuple[float, float, float]:
    """(result wait, idle wait, quiet after) seconds: MLFLEET_EXECUTOR_{RESULT_WAIT,IDLE_WAIT,QUIET_AFTER}_SECONDS."""
    from mlfleet.config import Settings

    settings = Settings()
    return (settings.executor_result_wait_seconds, settings.executor_idle_wait_seconds,
            settings.executor_quiet_after_seconds)


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose forked workers (and so every task process) start with mlfleet's libraries
    loaded, and whose heartbeat returns as soon as a running task ends."""

    def start(self) -> None:
        if self.is_mp_using_fork:  # spawned workers (macOS) start a new interpreter: nothing to inherit
            started = time.perf_counter()
            names = preload_modules()
            failed = preload(names)
            log.info("mlfleet executor: preloaded %d module(s) in %.1f s before forking workers",
                     len(names) - len(failed), time.perf_counter() - started)
        super().start()

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - Airflow's signature
        super().__init__(*args, **kwargs)
        # Airflow 3.3's LocalExecutor never fills `self.running`: what its workers still owe a final
        # result is kept here (key -> the workload's "started" state, which is not final).
        self.in_flight: dict = {}
        self.result_wait_s, self.idle_wait_s, self.quiet_after_s = wait_settings()
        self.last_busy = time.monotonic()

    def _process_workloads(self, workload_list: list) -> None:
        for workload in workload_list:
            self.in_flight[workload.key] = workload.running_state
        super()._process_workloads(workload_list)

    def change_state(self, key, state, info=None, remove_running=True) -> None:  # noqa: ANN001 - Airflow's signature
        if key in self.in_flight and state != self.in_flight[key]:
            del self.in_flight[key]
        super().change_state(key, state, info, remove_running=remove_running)

    def fail_connection_test(self, key) -> None:  # noqa: ANN001 - Airflow's signature
        self.in_flight.pop(key, None)  # the reaper gave up on it: no result will come
        super().fail_connection_test(key)

    def sync(self) -> None:
        self.forget_what_a_dead_worker_held()
        if not self.wait_for_a_result(self.result_wait_s):
            self.rest_while_quiet()
        super().sync()

    def forget_what_a_dead_worker_held(self) -> bool:
        """Empty the in-flight book when a worker died (Airflow's sync reaps it next); returns whether one had.

        A worker killed mid-task (an OOM kill) never reports its task's end, and its key would make
        every later loop wait the full result wait. The results do not say which worker held which
        task, so the whole book goes: the tasks still running are then looped over as stock Airflow
        does until they end, and new ones are booked again. The task itself is Airflow's to fail and
        retry (its heartbeat stops).
        """
        workers = getattr(self, "workers", {})  # Airflow sets it in start()
        dead = [pid for pid, proc in workers.items() if not proc.is_alive()]
        if dead and self.in_flight:
            log.warning("mlfleet executor: worker(s) %s died; forgetting %d in-flight workload(s)", dead, len(self.in_flight))
            self.in_flight.clear()
        return bool(dead)

    def _has_queued(self) -> bool:
        return bool(self.queued_tasks or self.queued_callbacks or self.queued_connection_tests)

    def rest_while_quiet(self) -> float:
        """Sleep ``idle_wait_s`` once nothing has been queued or run for ``quiet_after_s``; returns the sleep.

        An idle `mlfleet up` otherwise loops every idle sleep (0.25 s) for nothing, and on 2 cores
        that took 10.5 CPU-seconds a minute (2026-12-02), CPU that a `mlfleet sweep` or a notebook
        beside the stack loses. Between the rounds of a sweep, and for ``quiet_after_s`` after any
        task, loops stay fast; a quiet stack takes up to ``idle_wait_s`` longer to start a run
        triggered over REST or on a schedule. 0 turns it off.
        """
        now = time.monotonic()
        if self.in_flight or self._has_queued():
            self.last_busy = now
            return 0.0
        if self.idle_wait_s <= 0 or now - self.last_busy < self.quiet_after_s:
            return 0.0
        time.sleep(self.idle_wait_s)
        return self.idle_wait_s

    def wait_for_a_result(self, timeout: float) -> bool:
        """Block until a worker reports (a workload started or ended) or ``timeout`` passes, while workloads run.

        Stock, the scheduler learns that a task ended at its next loop, up to its idle sleep later,
        and every loop costs CPU a sweep's own fits lose: on 2 cores a loop over a running sweep
        took ~0.2 s of CPU, and a scheduler looping every 0.25 s took 33 CPU-seconds during a 160 s
        sweep, 14 at 1 s (2026-12-02). Waiting here on the queue the workers already write to wakes
        the scheduler as soon as a task ends, and while tasks run a loop comes every ``timeout`` +
        the idle sleep. What only a loop notices (a run triggered over REST, a deferred task its
        trigger resumed, a task cleared in the UI, a task process whose exit lags its success)
        waits up to ``timeout`` longer while another task runs. Nothing is read from the queue
        (``sync`` does that); nothing waits when no workload runs or one is queued. Returns whether
        a result is waiting.
        """
        reader = getattr(self.result_queue, "_reader", None)  # multiprocessing's SimpleQueue end we read
        if timeout <= 0 or not self.in_flight or self._has_queued() or reader is None:
            return False
        return bool(reader.poll(timeout))
