"""PSI, KS and the drift report, down to the generated demo stream's real shift."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from mlfleet.config import Settings
from mlfleet.drift import PSI_EPSILON, drift_report, ks, psi, write_drift_report
from mlfleet.demo.events import generate_events

DEFAULTS = {
    "psi_threshold": Settings.model_fields["drift_psi_threshold"].default,
    "ks_pvalue": Settings.model_fields["drift_ks_pvalue"].default,
    "ks_statistic": Settings.model_fields["drift_ks_statistic"].default,
}


def _normal(seed: int, n: int, loc: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, 1.0, n)


def test_defaults_are_the_documented_ones() -> None:
    assert DEFAULTS == {"psi_threshold": 0.25, "ks_pvalue": 0.001, "ks_statistic": 0.1}


def test_psi_identical_and_same_distribution_is_near_zero() -> None:
    x = _normal(0, 5000)
    assert psi(x, x) == 0.0
    assert 0.0 < psi(x, _normal(1, 5000)) < 0.02


def test_psi_matches_the_formula_by_hand() -> None:
    reference = np.arange(100.0)  # quartile edges 24.75, 49.5, 74.25
    current = np.r_[np.arange(0.0, 25.0), np.arange(0.0, 25.0), np.arange(75.0, 100.0), np.arange(75.0, 100.0)]
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + 2 * (PSI_EPSILON - 0.25) * math.log(PSI_EPSILON / 0.25)
    assert psi(reference, current, bins=4) == pytest.approx(expected)
    assert psi(reference, current, bins=4) > 4


def test_psi_counts_values_outside_the_reference_range() -> None:
    reference = _normal(2, 2000)
    assert psi(reference, reference + 10) > 5


def test_psi_constant_columns_and_nans() -> None:
    assert psi(np.full(100, 3.0), np.full(50, 3.0)) == 0.0
    assert psi(np.full(100, 3.0), np.full(50, 4.0)) > 5
    assert psi(np.full(100, 3.0), np.r_[np.full(50, 3.0), np.full(50, 4.0)]) > 1
    x, y = _normal(3, 500), _normal(4, 500, 0.5)
    noisy_x, noisy_y = np.r_[x, np.nan, np.nan], np.r_[np.nan, y, np.inf]
    assert psi(noisy_x, noisy_y) == psi(x, y)
    assert ks(noisy_x, noisy_y) == ks(x, y)
    with pytest.raises(ValueError, match="current has no finite values"):
        psi(x, [np.nan, np.nan])
    with pytest.raises(ValueError, match="bins"):
        psi(x, y, bins=0)


def test_ks_is_scipys_ks_2samp() -> None:
    x, y = _normal(5, 700), _normal(6, 400, 0.3)
    expected = ks_2samp(x, y)
    assert ks(x, y) == (expected.statistic, expected.pvalue)
    assert ks(np.full(10, 1.0), np.full(10, 1.0)) == (0.0, 1.0)


def test_report_on_identical_frames_has_no_drift() -> None:
    frame = pd.DataFrame({"a": _normal(7, 1000), "b": np.full(1000, 2.0)})
    report = drift_report(reference=frame, current=frame.copy(), features=["a", "b"], **DEFAULTS)
    assert report["drift"] is False and report["drifted_features"] == []
    assert report["features"]["a"]["psi"] == 0.0
    assert report["features"]["a"]["ks_statistic"] == 0.0 and report["features"]["a"]["ks_pvalue"] == 1.0
    assert report["features"]["b"]["reason"].startswith("within limits")
    assert report["n_reference"] == report["n_current"] == 1000
    assert report["thresholds"] == {**DEFAULTS, "bins": 10}
    json.dumps(report)  # JSON-ready without a default= hook


def test_report_flags_a_shifted_normal_for_both_reasons() -> None:
    reference = pd.DataFrame({"x": _normal(8, 2000), "y": _normal(9, 2000)})
    current = pd.DataFrame({"x": _normal(10, 1500, 1.0), "y": _normal(11, 1500)})
    report = drift_report(reference=reference, current=current, features=["y", "x"], **DEFAULTS)
    x = report["features"]["x"]
    assert report["drift"] is True and report["drifted_features"] == ["x"]
    assert x["drifted"] is True and x["psi"] > 0.5 and x["ks_statistic"] > 0.3 and x["ks_pvalue"] < 1e-50
    assert x["reason"].startswith("psi ") and "> 0.25" in x["reason"] and "ks statistic" in x["reason"]
    assert report["features"]["y"]["drifted"] is False
    assert report["n_reference"] == 2000 and report["n_current"] == 1500


def test_ks_alone_flags_a_clear_shift_but_the_floor_ignores_a_tiny_one() -> None:
    reference = pd.DataFrame({"x": _normal(12, 40_000)})
    moderate = pd.DataFrame({"x": _normal(13, 40_000, 0.3)})
    report = drift_report(reference=reference, current=moderate, features=["x"], **DEFAULTS)["features"]["x"]
    assert report["psi"] < 0.25 and report["ks_statistic"] > 0.1
    assert report["drifted"] is True and report["reason"].startswith("ks statistic")

    tiny = pd.DataFrame({"x": _normal(14, 40_000, 0.05)})
    report = drift_report(reference=reference, current=tiny, features=["x"], **DEFAULTS)["features"]["x"]
    assert report["ks_pvalue"] < 0.001 and report["ks_statistic"] < 0.1  # significant, yet tiny
    assert report["drifted"] is False


def test_report_rejects_missing_features_and_empty_windows() -> None:
    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="'app_share'.*current"):
        drift_report(reference=frame.assign(app_share=0.5), current=frame, features=["amount", "app_share"], **DEFAULTS)
    with pytest.raises(ValueError, match="'app_share'.*reference"):
        drift_report(reference=frame, current=frame, features=["app_share"], **DEFAULTS)
    with pytest.raises(ValueError, match="current window has no rows"):
        drift_report(reference=frame, current=frame.iloc[:0], features=["amount"], **DEFAULTS)
    with pytest.raises(ValueError, match="feature 'amount': current has no finite values"):
        drift_report(reference=frame, current=frame.assign(amount=np.nan), features=["amount"], **DEFAULTS)


def test_write_drift_report_is_atomic_json(tmp_path) -> None:
    frame = pd.DataFrame({"a": _normal(15, 300)})
    report = drift_report(reference=frame, current=frame + 1, features=["a"], **DEFAULTS)
    path = write_drift_report(report, tmp_path / "drift" / "2026-08-01.json")
    assert path == tmp_path / "drift" / "2026-08-01.json"
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["2026-08-01.json"]


def _per_customer(events: pd.DataFrame, first_day: int, days: int = 7) -> pd.DataFrame:
    day = (events["event_timestamp"] - events["event_timestamp"].min().normalize()).dt.days
    window = events[(day >= first_day) & (day < first_day + days)]
    return window.groupby("customer_id").agg(
        mean_amount=("amount", "mean"),
        app_share=("channel", lambda c: float((c == "app").mean())),
    )


def test_generated_shift_is_detected_on_per_customer_aggregates() -> None:
    # The demo's own shape: 70 days, shift on day 56, 7-day windows, default thresholds.
    events = generate_events(customers=400, start=dt.date(2026, 8, 1), days=70, seed=7, shift_day=56)
    week_6, week_7, week_8 = (_per_customer(events, d) for d in (42, 49, 56))
    features = ["mean_amount", "app_share"]

    calm = drift_report(reference=week_6, current=week_7, features=features, **DEFAULTS)
    assert calm["drift"] is False
    assert all(calm["features"][f]["psi"] < 0.15 for f in features)
    assert calm["n_reference"] > 200 and calm["n_current"] > 200

    shifted = drift_report(reference=week_7, current=week_8, features=features, **DEFAULTS)
    assert shifted["drifted_features"] == ["app_share", "mean_amount"]
    for f in features:
        assert shifted["features"][f]["psi"] > 0.8
        assert shifted["features"][f]["ks_statistic"] > 0.4 and shifted["features"][f]["ks_pvalue"] < 1e-10
    assert week_8["mean_amount"].median() > 1.5 * week_7["mean_amount"].median()
    assert week_8["app_share"].mean() > week_7["app_share"].mean() + 0.3
