"""The drift check's current window: the newest days of each view's per-day statistics, merged."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlfleet.drift import sketch
from mlfleet.drift.window import recent_statistics, statistics_root


def _write_day(root: str, view: str, day: date, values: dict[str, np.ndarray]) -> None:
    """One day's statistics as the feature job lays them out (plus the marker files Spark leaves)."""
    rows = []
    for feature, column in values.items():
        s = sketch.from_values(column)
        rows.append(pd.DataFrame({"feature": feature, "bucket": s.bucket, "count": s.count, "low": s.low,
                                  "high": s.high}))
    folder = f"{root}/{view}/feature_date={day.isoformat()}"
    pd.concat(rows).to_parquet(f"{_mkdir(folder)}/part-00000.snappy.parquet", index=False)
    open(f"{folder}/.part-00000.snappy.parquet.crc", "w").close()
    open(f"{root}/{view}/_SUCCESS", "w").close()


def _mkdir(folder: str) -> str:
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def settings(mlfleet_home):
    from mlfleet.config import get_settings

    return get_settings()


def test_the_window_merges_each_views_newest_days(settings) -> None:
    root = statistics_root(settings)
    assert root == f"{settings.feature_root.rstrip('/')}/offline/_stats"
    rng = np.random.default_rng(0)
    first = date(2026, 9, 1)
    spend = {first + timedelta(days=d): rng.gamma(2, 30, 100 + d) for d in range(10)}
    for day, values in spend.items():
        _write_day(root, "customer_spend", day, {"spend_7d": values, "orders_7d": np.round(values / 30)})
    for d in range(3):  # a view whose newest day is older: its own newest 7 days count
        _write_day(root, "customer_channels", first + timedelta(days=d), {"app_share_28d": rng.uniform(0, 1, 50)})

    window, rows = recent_statistics(settings, features=["spend_7d", "app_share_28d"], days=7)
    expected = sketch.from_values(np.concatenate([spend[first + timedelta(days=d)] for d in range(3, 10)]))
    assert window.keys() == {"spend_7d", "app_share_28d"}
    np.testing.assert_array_equal(window["spend_7d"].count, expected.count)
    np.testing.assert_array_equal(window["spend_7d"].high, expected.high)
    assert window["app_share_28d"].n == 150 and rows == expected.n

    with pytest.raises(LookupError, match=r"hold \['no_such_feature'\].*newest 7 days"):
        recent_statistics(settings, features=["spend_7d", "no_such_feature"], days=7)
    with pytest.raises(ValueError, match="days: 0"):
        recent_statistics(settings, features=["spend_7d"], days=0)


def test_a_feature_in_two_views_is_refused_by_name(settings) -> None:
    root = statistics_root(settings)
    for view in ("a_view", "b_view"):
        _write_day(root, view, date(2026, 9, 1), {"spend_7d": np.arange(5.0)})
    with pytest.raises(ValueError, match="'spend_7d' has statistics in views 'a_view' and 'b_view'"):
        recent_statistics(settings, features=["spend_7d"], days=7)


def test_no_statistics_at_all_says_where_it_looked(settings) -> None:
    with pytest.raises(LookupError, match="no feature statistics under .*_stats hold"):
        recent_statistics(settings, features=["spend_7d"], days=7)
