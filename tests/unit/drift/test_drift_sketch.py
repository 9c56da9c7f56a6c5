"""PSI, KS and the histogram from mergeable statistics, held to the exact row-wise ones.

The tolerance (docs/drift.md): |PSI from statistics - exact PSI| <= 0.02 and |KS statistic from
statistics - exact KS statistic| <= 0.02 on demo-like features, identical drift verdicts; exact
(to float rounding) where every bucket holds one value, as integer counts and simple shares do.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlfleet.config import Settings
from mlfleet.demo.events import generate_events
from mlfleet.drift import sketch, statistics
from mlfleet.drift.statistics import drift_report, ks, psi, sketch_drift_report, sketch_ks, sketch_psi
from mlfleet.etl import feature_job

PSI_TOLERANCE, KS_TOLERANCE = 0.02, 0.02
DEFAULTS = {
    "psi_threshold": Settings.model_fields["drift_psi_threshold"].default,
    "ks_pvalue": Settings.model_fields["drift_ks_pvalue"].default,
    "ks_statistic": Settings.model_fields["drift_ks_statistic"].default,
}


def test_the_feature_job_buckets_with_the_same_constants() -> None:
    """feature_job.py ships alone, so it carries its own copy of the scheme."""
    assert (feature_job.SKETCH_GAMMA, feature_job.SKETCH_TINY, feature_job.SKETCH_OFFSET) == \
           (sketch.GAMMA, sketch.TINY, sketch.OFFSET)


def test_buckets_are_monotone_and_one_percent_wide() -> None:
    values = np.sort(np.r_[-np.logspace(-12, 6, 4000), 0.0, np.logspace(-12, 6, 4000)])
    ids = sketch.bucket_ids(values)
    assert (np.diff(ids) >= 0).all()
    s = sketch.from_values(values)
    wide = s.high > s.low
    assert (np.abs(s.high[wide]) <= np.abs(s.low[wide]) * sketch.GAMMA + sketch.TINY).all() or \
           (np.abs(s.low[wide]) <= np.abs(s.high[wide]) * sketch.GAMMA + sketch.TINY).all()
    assert s.n == values.size and s.bucket[(s.low <= 0) & (s.high >= 0)].tolist() == [0]


def test_nan_and_inf_are_dropped_like_the_exact_statistics_drop_them() -> None:
    s = sketch.from_values([1.0, np.nan, np.inf, -np.inf, 2.0])
    assert s.n == 2 and s.low.tolist() == [1.0, 2.0]
    assert sketch.from_values([np.nan]).n == 0


def test_merging_days_equals_the_sketch_of_all_days_exactly() -> None:
    rng = np.random.default_rng(0)
    days = [rng.lognormal(3, 1, 500) * rng.choice([-1, 0, 1], 500) for _ in range(3)]
    whole = sketch.from_values(np.concatenate(days))
    for merged in (sketch.merge([sketch.from_values(d) for d in days]),
                   sketch.merge([sketch.merge([sketch.from_values(days[2]), sketch.from_values(days[0])]),
                                 sketch.from_values(days[1])])):
        for field in ("bucket", "count", "low", "high"):
            np.testing.assert_array_equal(getattr(merged, field), getattr(whole, field))


def test_stored_rows_of_several_days_merge_per_feature() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(50, 10, 300), rng.normal(55, 10, 200)
    rows = []
    for day, values in (("2026-09-01", a), ("2026-09-02", b)):
        s = sketch.from_values(values)
        rows.append(pd.DataFrame({"feature": "x", "bucket": s.bucket, "count": s.count, "low": s.low, "high": s.high,
                                  "feature_date": day}))
    merged = sketch.from_table(pd.concat(rows))["x"]
    np.testing.assert_array_equal(merged.count, sketch.from_values(np.r_[a, b]).count)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['high'\]"):
        sketch.from_table(pd.concat(rows).drop(columns="high"))


def test_json_round_trip_and_format_check() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 2.0], "b": [0.5, np.nan, 7.0]})
    payload = sketch.to_json(sketch.from_frame(frame, ["a", "b"]), rows=len(frame))
    back, rows = sketch.from_json(payload)
    assert rows == 3 and back["a"].count.tolist() == [1, 2] and back["b"].n == 2
    with pytest.raises(ValueError, match="format 'other'"):
        sketch.from_json({**payload, "format": "other"})


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_quantiles_are_numpys_on_single_valued_buckets(q: float) -> None:
    values = np.random.default_rng(2).poisson(4, 1001).astype(float)
    assert sketch.quantiles(sketch.from_values(values), np.array([q]))[0] == np.quantile(values, q)


def test_integer_features_give_the_exact_numbers() -> None:
    """Counts (orders, categories, days since the last order) have one value per bucket: no error at all."""
    rng = np.random.default_rng(3)
    reference, current = rng.poisson(3, 4000).astype(float), rng.poisson(3.6, 1500).astype(float)
    r, c = sketch.from_values(reference), sketch.from_values(current)
    assert sketch_psi(r, c) == pytest.approx(psi(reference, current), abs=1e-12)
    stat, pvalue = sketch_ks(r, c)
    assert stat == pytest.approx(ks(reference, current)[0], abs=1e-12)
    approx, exact = statistics.sketch_histogram(r, c), statistics.histogram(reference, current)
    for key in ("edges", "reference", "current"):
        assert approx[key] == pytest.approx(exact[key], abs=1e-12), key
    assert sketch_psi(r, r) == 0.0 and sketch_ks(r, r) == (0.0, 1.0)


def test_constant_and_out_of_range_columns() -> None:
    three, four = sketch.from_values(np.full(100, 3.0)), sketch.from_values(np.full(50, 4.0))
    assert sketch_psi(three, three) == 0.0
    assert sketch_psi(three, four) == pytest.approx(psi(np.full(100, 3.0), np.full(50, 4.0)))
    normal = np.random.default_rng(4).normal(0, 1, 2000)
    assert sketch_psi(sketch.from_values(normal), sketch.from_values(normal + 10)) > 5
    with pytest.raises(ValueError, match="current has no finite values"):
        sketch_psi(three, sketch.from_values([np.nan]))
    with pytest.raises(ValueError, match="bins"):
        sketch_psi(three, four, bins=0)


def _views(events: pd.DataFrame, feature_days: range) -> pd.DataFrame:
    """The demo views' features (customer_spend, customer_channels), one row per customer and day."""
    day = (events["event_timestamp"] - events["event_timestamp"].min().normalize()).dt.days
    events = events.assign(day=day, app=(events["channel"] == "app").astype(float),
                           store=(events["channel"] == "store").astype(float))
    frames = []
    for d in feature_days:
        window = events[(events["day"] > d - 28) & (events["day"] <= d)]
        last_7d = window["day"] > d - 7
        grouped = window.assign(spend_7d=window["amount"].where(last_7d, 0.0), orders_7d=last_7d.astype(float))
        frames.append(grouped.groupby("customer_id").agg(
            spend_7d=("spend_7d", "sum"), spend_28d=("amount", "sum"), orders_7d=("orders_7d", "sum"),
            orders_28d=("amount", "size"), avg_amount_28d=("amount", "mean"), app_share_28d=("app", "mean"),
            store_share_28d=("store", "mean"), categories_28d=("category", "nunique"),
            days_since_last_order=("day", lambda s, d=d: d - s.max())).astype(float))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def demo_windows() -> dict[str, pd.DataFrame]:
    # The demo's shape: shift on day 49; a 14-day training window before it, 7-day windows after.
    events = generate_events(customers=400, start=dt.date(2026, 8, 1), days=70, seed=7, shift_day=49)
    return {"reference": _views(events, range(28, 42)), "calm": _views(events, range(42, 49)),
            "shifted": _views(events, range(56, 63))}


@pytest.mark.parametrize("window", ["calm", "shifted"])
def test_demo_features_agree_with_the_exact_statistics(demo_windows, window: str) -> None:
    reference, current = demo_windows["reference"], demo_windows[window]
    features = list(reference.columns)
    exact = drift_report(reference=reference, current=current, features=features, **DEFAULTS)
    approx = sketch_drift_report(reference=sketch.from_frame(reference, features),
                                 current=sketch.from_frame(current, features), features=features,
                                 n_reference=len(reference), n_current=len(current), **DEFAULTS)
    assert approx.keys() == exact.keys() and approx["thresholds"] == exact["thresholds"]
    assert (approx["n_reference"], approx["n_current"]) == (exact["n_reference"], exact["n_current"])
    for f in features:
        e, a = exact["features"][f], approx["features"][f]
        assert a.keys() == e.keys() and a["histogram"].keys() == e["histogram"].keys()
        assert abs(a["psi"] - e["psi"]) <= PSI_TOLERANCE, (f, a["psi"], e["psi"])
        assert abs(a["ks_statistic"] - e["ks_statistic"]) <= KS_TOLERANCE, (f, a["ks_statistic"], e["ks_statistic"])
        assert a["drifted"] == e["drifted"], (f, a["reason"], e["reason"])
        np.testing.assert_allclose(a["histogram"]["reference"], e["histogram"]["reference"], atol=0.02)
        np.testing.assert_allclose(a["histogram"]["current"], e["histogram"]["current"], atol=0.02)
    assert approx["drifted_features"] == exact["drifted_features"] and approx["drift"] == exact["drift"]
    assert approx["drift"] is (window == "shifted")


@pytest.mark.parametrize("sizes", [(20_000, 15_000), (90_000, 60_000)], ids=["kstwo", "kstwobign"])
def test_ks_pvalue_is_scipys_asymptotic_two_sample_one(sizes: tuple[int, int]) -> None:
    """kstwo at effective n = n*m/(n+m) up to KS_EXACT_N, its limit kstwobign above (within ~1%)."""
    from scipy.stats import ks_2samp, kstwo

    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, sizes[0]), rng.normal(0.02, 1, sizes[1])  # above 10,000: ks_2samp is asymptotic too
    expected = ks_2samp(x, y, method="asymp")
    stat, pvalue = sketch_ks(sketch.from_values(x), sketch.from_values(y))
    assert expected.statistic - KS_TOLERANCE <= stat <= expected.statistic + 1e-12  # bucket ends: never above
    effective = sizes[0] * sizes[1] / sum(sizes)
    assert (effective <= statistics.KS_EXACT_N) is (sizes[0] < 50_000)
    assert pvalue == pytest.approx(kstwo.sf(stat, round(effective)), rel=0.02)
    assert pvalue == pytest.approx(expected.pvalue, rel=0.5) and 0 < pvalue < 0.5


def test_report_errors_name_the_feature_and_the_window() -> None:
    s = {"a": sketch.from_values([1.0, 2.0])}
    with pytest.raises(ValueError, match="'b' missing from the reference window"):
        sketch_drift_report(reference=s, current=s, features=["a", "b"], n_reference=2, n_current=2, **DEFAULTS)
    with pytest.raises(ValueError, match="the current window has no rows"):
        sketch_drift_report(reference=s, current=s, features=["a"], n_reference=2, n_current=0, **DEFAULTS)
    empty = {"a": sketch.from_values([np.nan])}
    with pytest.raises(ValueError, match="feature 'a': current has no finite values"):
        sketch_drift_report(reference=s, current=empty, features=["a"], n_reference=2, n_current=1, **DEFAULTS)
