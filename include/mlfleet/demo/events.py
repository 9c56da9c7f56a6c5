"""A synthetic retail event stream and its date-partitioned Parquet raw zone (the demo's source).

The stream is built to make the demo honest rather than pretty:

* each customer has a gamma-distributed activity rate, so counts are over-dispersed;
* ~30% of customers churn on a random day, slowing down over the three weeks before it and
  buying nothing after it, so "no purchase in the next 14 days" is learnable from recent activity;
* weekly seasonality (busy Fri-Sun, quiet Monday);
* from `shift_day` on, amounts grow, the channel mix moves to `app` and the category mix to
  `electronics`: a shift that PSI/KS on per-customer aggregates detect.

Schema: event_id str, customer_id int64, event_timestamp datetime64[s, UTC], event_date
datetime.date (UTC date of the timestamp), amount float64 > 0, category str, channel str.

Everything is deterministic for a seed and vectorised (one Python loop per day, none per event).
numpy/pandas load inside the functions so importing this module from a DAG file stays cheap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfleet.storage.atomic import write_with

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlfleet.config import Settings

CATEGORIES = ("grocery", "electronics", "fashion", "travel", "home")
CATEGORY_WEIGHTS = (0.36, 0.10, 0.22, 0.07, 0.25)
CATEGORY_MEAN_AMOUNT = (35.0, 240.0, 80.0, 420.0, 120.0)
CHANNELS = ("web", "app", "store")
CHANNEL_WEIGHTS = (0.45, 0.25, 0.30)
# Monday .. Sunday multipliers on the daily rate.
WEEKDAY_FACTOR = (0.65, 0.90, 0.95, 1.00, 1.20, 1.40, 1.25)
# Share of the day's events per UTC hour: quiet nights, a lunch bump, a busy evening.
HOUR_WEIGHTS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 4, 4.5,
                5.5, 5, 4.5, 4.5, 5, 5.5, 6.5, 7.5, 7.5, 6, 4, 2)
MEAN_DAILY_RATE = 0.45
CHURN_SHARE = 0.30
CHURN_RAMP_DAYS = 21
AMOUNT_SIGMA = 0.55
PARTITION_FILE = "part-00000.parquet"


def customer_profiles(*, customers: int, days: int, seed: int) -> pd.DataFrame:
    """The latent truth behind `generate_events` (rate, churn day, preferences), for tests and docs.

    Columns: customer_id, rate (events/day), churn_day (0-based day index of the first silent
    day, -1 when the customer never churns), spend (amount multiplier), p_<channel>, p_<category>.
    """
    import numpy as np
    import pandas as pd

    if customers < 1 or days < 1:
        raise ValueError("customers and days must both be at least 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    shape = 1.6
    rate = rng.gamma(shape, MEAN_DAILY_RATE / shape, customers)
    churns = rng.random(customers) < CHURN_SHARE
    churn_day = np.where(churns, rng.integers(1, max(days, 2), customers), -1)
    spend = rng.lognormal(-0.045, 0.3, customers)
    channel_p = rng.dirichlet(np.asarray(CHANNEL_WEIGHTS) * 6, customers)
    category_p = rng.dirichlet(np.asarray(CATEGORY_WEIGHTS) * 8, customers)
    frame = pd.DataFrame({
        "customer_id": np.arange(1, customers + 1, dtype="int64"),
        "rate": rate,
        "churn_day": churn_day.astype("int64"),
        "spend": spend,
    })
    for k, name in enumerate(CHANNELS):
        frame[f"p_{name}"] = channel_p[:, k]
    for k, name in enumerate(CATEGORIES):
        frame[f"p_{name}"] = category_p[:, k]
    return frame


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probs` (rows sum to 1), vectorised via the inverse CDF."""
    import numpy as np

    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    return np.minimum((u >= cdf).sum(axis=1), probs.shape[1] - 1)


def _toward(probs: np.ndarray, k: int, weight: float) -> np.ndarray:
    """Mix each row of `probs` with the one-hot vector of column `k`."""
    target = probs * 0
    target[:, k] = 1.0
    return (1 - weight) * probs + weight * target


def generate_events(
    *,
    customers: int,
    start: dt.date,
    days: int,
    seed: int,
    shift_day: int | None = None,
    shift_strength: float = 1.0,
) -> pd.DataFrame:
    """Raw events for `customers` over `days` from `start`, sorted by time; see the module doc."""
    import numpy as np
    import pandas as pd

    profiles = customer_profiles(customers=customers, days=days, seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    rate = profiles["rate"].to_numpy()
    churn_day = profiles["churn_day"].to_numpy()
    never = churn_day < 0
    everyone = np.arange(customers)
    day_parts, cust_parts = [], []
    for d in range(days):
        to_churn = churn_day - d
        alive = np.where(never, 1.0, np.clip(0.2 + 0.8 * (to_churn - 1) / CHURN_RAMP_DAYS, 0.2, 1.0))
        alive = np.where(~never & (to_churn <= 0), 0.0, alive)
        factor = WEEKDAY_FACTOR[(start + dt.timedelta(days=d)).weekday()]
        todays = np.repeat(everyone, rng.poisson(rate * alive * factor))
        cust_parts.append(todays)
        day_parts.append(np.full(len(todays), d))
    cust_idx, day_idx = np.concatenate(cust_parts), np.concatenate(day_parts)
    n = len(day_idx)

    shifted = np.zeros(n, dtype=bool) if shift_day is None else day_idx >= shift_day
    strength = max(float(shift_strength), 0.0)
    channel_p = profiles[[f"p_{c}" for c in CHANNELS]].to_numpy()
    category_p = profiles[[f"p_{c}" for c in CATEGORIES]].to_numpy()
    app, electronics = CHANNELS.index("app"), CATEGORIES.index("electronics")
    channel_shift = _toward(channel_p, app, min(0.6 * strength, 1.0))
    category_shift = _toward(category_p, electronics, min(0.35 * strength, 1.0))
    channel = _pick(rng, np.where(shifted[:, None], channel_shift[cust_idx], channel_p[cust_idx]))
    category = _pick(rng, np.where(shifted[:, None], category_shift[cust_idx], category_p[cust_idx]))

    means = np.asarray(CATEGORY_MEAN_AMOUNT)[category] * profiles["spend"].to_numpy()[cust_idx]
    means = means * np.where(shifted, 1 + 0.6 * strength, 1.0)
    raw = rng.lognormal(np.log(means) - AMOUNT_SIGMA**2 / 2, AMOUNT_SIGMA)
    amount = np.maximum(np.round(raw, 2), 0.01)

    hours = np.asarray(HOUR_WEIGHTS, dtype=float)
    hour = rng.choice(24, size=n, p=hours / hours.sum())
    second = day_idx.astype("int64") * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    order = np.lexsort((cust_idx, second))
    epoch = np.datetime64(start.isoformat(), "s")
    dates = np.array([start + dt.timedelta(days=d) for d in range(days)], dtype=object)
    ids = pd.Series(np.arange(n)).astype(str)
    return pd.DataFrame({
        "event_id": (f"e{seed}-" + ids).to_numpy(dtype=object),
        "customer_id": (cust_idx[order] + 1).astype("int64"),
        "event_timestamp": pd.DatetimeIndex(epoch + second[order]).tz_localize("UTC"),
        "event_date": dates[day_idx[order]],
        "amount": amount[order].astype("float64"),
        "category": np.asarray(CATEGORIES, dtype=object)[category[order]],
        "channel": np.asarray(CHANNELS, dtype=object)[channel[order]],
    })


def write_raw_zone(events: pd.DataFrame, root: Path) -> list[Path]:
    """Write one hive partition per date, `root/event_date=YYYY-MM-DD/part-00000.parquet`.

    Each file lands by rename, so a reader sees the old partition or the new one, never half;
    rewriting a date replaces its file, so re-running a day never duplicates events. The
    partition column lives only in the path; timestamps are stored as UTC microseconds,
    the unit Spark reads natively.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = []
    for key, part in events.groupby("event_date", sort=True):
        day = dt.date.fromisoformat(str(key)[:10]).isoformat()  # a date, a Timestamp or a string
        part = part.drop(columns="event_date")
        directory = Path(root) / f"event_date={day}"
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part.sort_values("event_timestamp", kind="stable"), preserve_index=False)
        written.append(write_with(directory / PARTITION_FILE,
                                  lambda tmp, table=table: pq.write_table(table, tmp, coerce_timestamps="us")))
    return written


def _write(*, customers: int, start: dt.date, days: int, seed: int, shift_day: int | None, out: Path) -> dict[str, Any]:
    events = generate_events(customers=customers, start=start, days=days, seed=seed, shift_day=shift_day)
    paths = write_raw_zone(events, out)
    return {
        "events": len(events),
        "days": days,
        "partitions": len(paths),
        "start": start.isoformat(),
        "end": (start + dt.timedelta(days=days - 1)).isoformat(),
        "path": str(out),
    }


def generate_demo_raw_zone(settings: Settings) -> dict[str, Any]:
    """Write the demo's raw zone from the `demo_*` settings (seed 7) and summarise it.

    Partitions are replaced date by date; dates outside the demo range are left alone.
    """
    return _write(
        customers=settings.demo_customers,
        start=dt.date.fromisoformat(settings.demo_start),
        days=settings.demo_days,
        seed=7,
        shift_day=settings.demo_shift_day,
        out=settings.raw_events_dir,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlfleet.demo.events", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True, help="YYYY-MM-DD")
    parser.add_argument("--shift-day", type=int, default=None, help="0-based day the shift starts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = _write(customers=args.customers, start=args.start, days=args.days, seed=args.seed,
                     shift_day=args.shift_day, out=args.out)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
