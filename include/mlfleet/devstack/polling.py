"""Wait for an outside state (a health check, a parsed DAG, a finished run) with tenacity.

One shape for every wait of the devstack: call ``probe`` once a second until ``done`` accepts its
result, and after ``timeout`` seconds raise what ``timed_out`` builds from the last result, so the
error names what was not ready and how it last looked. Exceptions from ``probe`` are not retried.
"""

from __future__ import annotations

from typing import Callable, NoReturn, TypeVar

import tenacity

T = TypeVar("T")

POLL_INTERVAL_S = 1.0


def poll_until(
    probe: Callable[[], T],
    *,
    done: Callable[[T], bool],
    timeout: float,
    timed_out: Callable[[T], Exception],
    interval: float = POLL_INTERVAL_S,
) -> T:
    """``probe()`` every ``interval`` s until ``done(result)``; returns that result."""

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        assert state.outcome is not None  # tenacity calls this after an attempt
        raise timed_out(state.outcome.result())

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_not_result(done),
        retry_error_callback=give_up,
    )
    return retrying(probe)
