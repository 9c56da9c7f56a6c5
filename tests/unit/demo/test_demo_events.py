"""The synthetic event stream: schema, determinism, churn, seasonality, shift, and the raw zone."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mlfleet.config import Settings
from mlfleet.demo.events import (
    CATEGORIES,
    CHANNELS,
    customer_profiles,
    generate_demo_raw_zone,
    generate_events,
    main,
    write_raw_zone,
)

START = dt.date(2026, 8, 3)  # a Monday
DAYS = 70
SHIFT = 56


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    frame = generate_events(customers=600, start=START, days=DAYS, seed=11, shift_day=SHIFT)
    frame["day"] = (frame["event_timestamp"] - pd.Timestamp(START, tz="UTC")).dt.days
    return frame


def test_schema_and_value_ranges(events: pd.DataFrame) -> None:
    frame = events.drop(columns="day")
    assert list(frame.columns) == [
        "event_id", "customer_id", "event_timestamp", "event_date", "amount", "category", "channel",
    ]
    assert 14_000 < len(frame) < 19_000  # 600 customers x 70 days x ~0.45 a day, less churn
    assert frame["customer_id"].dtype == "int64"
    assert frame["customer_id"].between(1, 600).all()
    assert str(frame["event_timestamp"].dtype) == "datetime64[s, UTC]"
    assert frame["event_timestamp"].is_monotonic_increasing
    assert frame["event_timestamp"].min() >= pd.Timestamp(START, tz="UTC")
    assert frame["event_timestamp"].max() < pd.Timestamp(START + dt.timedelta(days=DAYS), tz="UTC")
    assert (frame["event_date"] == frame["event_timestamp"].dt.date).all()
    assert isinstance(frame["event_date"].iloc[0], dt.date)
    assert frame["amount"].dtype == "float64" and (frame["amount"] > 0).all()
    assert set(frame["category"]) == set(CATEGORIES)
    assert set(frame["channel"]) == set(CHANNELS)
    assert frame["event_id"].is_unique
    assert frame["event_id"].iloc[0] == "e11-0" and frame["event_id"].iloc[-1] == f"e11-{len(frame) - 1}"
    # Events spread over the whole day, not stacked at midnight.
    assert frame["event_timestamp"].dt.hour.nunique() == 24


def test_category_drives_amount(events: pd.DataFrame) -> None:
    before = events[events["day"] < SHIFT]
    means = before.groupby("category")["amount"].mean()
    assert means["travel"] > means["electronics"] > means["home"] > means["fashion"] > means["grocery"]


def test_same_seed_same_frame_other_seed_differs() -> None:
    kwargs = dict(customers=150, start=START, days=21, shift_day=14)
    first = generate_events(seed=5, **kwargs)
    pd.testing.assert_frame_equal(first, generate_events(seed=5, **kwargs))
    other = generate_events(seed=6, **kwargs)
    assert len(other) != len(first) or not other["amount"].equals(first["amount"])
    assert other["event_id"].iloc[0] == "e6-0"


def test_zero_strength_shift_is_no_shift() -> None:
    kwargs = dict(customers=100, start=START, days=14, seed=2)
    pd.testing.assert_frame_equal(
        generate_events(shift_day=7, shift_strength=0.0, **kwargs), generate_events(shift_day=None, **kwargs)
    )


def test_churned_customers_go_silent(events: pd.DataFrame) -> None:
    profiles = customer_profiles(customers=600, days=DAYS, seed=11)
    churned = profiles[profiles["churn_day"] >= 0]
    assert 0.2 < len(churned) / len(profiles) < 0.4
    last_day = events.groupby("customer_id")["day"].max()
    joined = churned.set_index("customer_id").join(last_day.rename("last_day"), how="inner")
    assert len(joined) > 100
    assert (joined["last_day"] < joined["churn_day"]).all()
    # Churn thins the active base: fewer buyers in the last two weeks than in the first two.
    first = events.loc[events["day"] < 14, "customer_id"].nunique()
    last = events.loc[events["day"] >= DAYS - 14, "customer_id"].nunique()
    assert last < 0.85 * first
    # And churners slow down before they stop: their last three weeks are quieter than before.
    early = joined[joined["churn_day"] >= 42].index
    ev = events[events["customer_id"].isin(early)].merge(profiles[["customer_id", "churn_day"]], on="customer_id")
    to_churn = ev["churn_day"] - ev["day"]
    ramp = (to_churn <= 21).sum() / 21
    steady = ((to_churn > 21) & (to_churn <= 42)).sum() / 21
    assert ramp < 0.8 * steady


def test_weekly_seasonality(events: pd.DataFrame) -> None:
    daily = events.groupby("day").size()
    weekday = pd.Series([(START + dt.timedelta(days=int(d))).weekday() for d in daily.index], index=daily.index)
    weekend = daily[weekday.isin([4, 5, 6])].mean()
    monday = daily[weekday == 0].mean()
    assert weekend > 1.4 * monday


def test_shift_moves_amount_channel_and_category(events: pd.DataFrame) -> None:
    # Compare the two weeks either side of the shift so churn affects both sides alike.
    before = events[events["day"].between(SHIFT - 14, SHIFT - 1)]
    after = events[events["day"].between(SHIFT, SHIFT + 13)]
    assert after["amount"].mean() > 1.5 * before["amount"].mean()
    assert (after["channel"] == "app").mean() > (before["channel"] == "app").mean() + 0.3
    assert (after["category"] == "electronics").mean() > (before["category"] == "electronics").mean() + 0.2
    # Without a shift the same split shows no such jump.
    plain = generate_events(customers=600, start=START, days=DAYS, seed=11)
    day = (plain["event_timestamp"] - pd.Timestamp(START, tz="UTC")).dt.days
    ratio = plain.loc[day.between(SHIFT, SHIFT + 13), "amount"].mean() / plain.loc[
        day.between(SHIFT - 14, SHIFT - 1), "amount"
    ].mean()
    assert 0.85 < ratio < 1.15


def _read_zone(root) -> pd.DataFrame:
    return ds.dataset(root, format="parquet", partitioning="hive").to_table().to_pandas()


def test_raw_zone_layout_and_idempotent_rewrite(tmp_path) -> None:
    frame = generate_events(customers=80, start=START, days=10, seed=3)
    paths = write_raw_zone(frame, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"event_date={START + dt.timedelta(days=d)}/part-00000.parquet" for d in range(10)
    ]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["part-00000.parquet"] * 10
    schema = pq.read_schema(paths[0])
    assert "event_date" not in schema.names
    assert str(schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert pq.read_table(paths[0]).num_rows == (frame["event_date"] == START).sum()

    write_raw_zone(frame, tmp_path)  # a re-run replaces, never appends
    back = _read_zone(tmp_path)
    assert len(back) == len(frame)
    assert back["event_id"].is_unique
    assert set(back["event_id"]) == set(frame["event_id"])
    assert back["amount"].sum() == pytest.approx(frame["amount"].sum())
    assert sorted(back["event_date"].astype(str).unique()) == sorted(str(d) for d in frame["event_date"].unique())

    # Rewriting one date with fewer rows replaces exactly that partition.
    day3 = frame[frame["event_date"] == START + dt.timedelta(days=3)]
    write_raw_zone(day3.head(5), tmp_path)
    back = _read_zone(tmp_path)
    assert len(back) == len(frame) - len(day3) + 5
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["part-00000.parquet"] * 10


def test_demo_raw_zone_from_settings(tmp_path) -> None:
    settings = Settings(home=tmp_path, demo_customers=50, demo_days=12, demo_start="2026-08-01", demo_shift_day=8)
    summary = generate_demo_raw_zone(settings)
    expected = generate_events(customers=50, start=dt.date(2026, 8, 1), days=12, seed=7, shift_day=8)
    assert summary == {
        "events": len(expected),
        "days": 12,
        "partitions": 12,
        "start": "2026-08-01",
        "end": "2026-08-12",
        "path": str(settings.raw_events_dir),
    }
    assert len(_read_zone(settings.raw_events_dir)) == len(expected)


def test_cli_in_process_and_as_module(tmp_path, capsys) -> None:
    args = ["--customers", "30", "--days", "5", "--start", "2026-09-01", "--shift-day", "3", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["partitions"] == 5 and summary["end"] == "2026-09-05"
    assert summary["events"] == len(_read_zone(tmp_path / "a")) > 0
    done = subprocess.run(
        [sys.executable, "-m", "mlfleet.demo.events", *args, "--out", str(tmp_path / "b")],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(done.stdout)["events"] == summary["events"]
    assert np.array_equal(
        _read_zone(tmp_path / "a")["amount"].to_numpy(), _read_zone(tmp_path / "b")["amount"].to_numpy()
    )
