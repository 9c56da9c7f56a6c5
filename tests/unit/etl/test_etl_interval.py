from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mlfleet.etl.interval import feature_interval, materialize_window

START = datetime(2026, 9, 1, tzinfo=timezone.utc)
END = datetime(2026, 9, 2, tzinfo=timezone.utc)


def test_a_daily_run_computes_its_own_day() -> None:
    assert feature_interval({}, START, END) == {"start": "2026-09-01", "end": "2026-09-01"}
    assert feature_interval({"start": None, "end": None}, START, END) == {"start": "2026-09-01", "end": "2026-09-01"}


def test_params_override_for_backfills() -> None:
    assert feature_interval({"start": "2026-08-01", "end": "2026-08-31"}, START, END) == {"start": "2026-08-01",
                                                                                          "end": "2026-08-31"}
    assert feature_interval({"start": "2026-08-20"}, START, END) == {"start": "2026-08-20", "end": "2026-09-01"}


def test_an_end_before_the_start_is_refused() -> None:
    with pytest.raises(ValueError, match="params.end 2026-08-01 is before params.start 2026-08-02"):
        feature_interval({"start": "2026-08-02", "end": "2026-08-01"}, START, END)


def test_the_online_window_reaches_past_the_last_days_midnight() -> None:
    start, end = materialize_window({"start": "2026-09-01", "end": "2026-09-03"})
    assert start == datetime(2026, 9, 1, tzinfo=timezone.utc)
    assert end == datetime(2026, 9, 4, 0, 0, 1, tzinfo=timezone.utc)
