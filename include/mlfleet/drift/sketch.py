"""Mergeable feature statistics: a log-bucket histogram per feature, what drift is computed from.

Every finite value falls in a bucket whose id depends on the value alone (buckets 1% wide,
relative to the value, as in DDSketch), and each bucket keeps its count and its lowest and highest
value. Days merge exactly (add the counts, take the min of the lows and the max of the highs), so
the feature job writes one small table per view and day and the drift check merges the newest
days, never reading a feature row. A bucket whose low equals its high holds one value exactly
(integer counts, shares such as 0 or 0.5), so statistics on such features are exact; elsewhere
values are taken as evenly spread between low and high, which errs by at most one bucket's share.

The feature job (`mlfleet/etl/feature_job.py`, shipped alone to the cluster) computes the same
bucket ids with Spark's functions from its own copy of the constants below; a test holds the two
copies equal, and the feature-view flow test holds Spark's tables equal to `from_values` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

GAMMA = 1.01  # neighbouring bucket bounds differ by 1%
TINY = 1e-9  # |x| below this shares bucket 0 with exact zeros
OFFSET = 4000  # > -log(TINY)/log(GAMMA), so every other positive value gets an id >= 1
FORMAT = "mlfleet.log-buckets/1"  # names the bucket scheme in stored statistics
COLUMNS = ("feature", "bucket", "count", "low", "high")
_LOG_GAMMA = math.log(GAMMA)
_EPS = 1e-9  # rank rounding slack: a quantile computed from a spread value lands on that value


@dataclass(frozen=True)
class Sketch:
    """One feature's buckets in value order (bucket ids are monotone in the value)."""

    bucket: np.ndarray  # int64, ascending
    count: np.ndarray  # int64, > 0
    low: np.ndarray  # float64, lowest value seen in the bucket
    high: np.ndarray  # float64, highest value seen in the bucket

    @property
    def n(self) -> int:
        return int(self.count.sum())

    @property
    def cumulative(self) -> np.ndarray:
        """Values in the buckets before bucket i, for i = 0..len (one more than buckets)."""
        return np.r_[0, np.cumsum(self.count)]


def bucket_ids(values: np.ndarray) -> np.ndarray:
    """Bucket id of each finite value: 0 near zero, +-(OFFSET + ceil(log_GAMMA |x|)) elsewhere."""
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        index = OFFSET + np.ceil(np.log(np.where(magnitude < TINY, 1.0, magnitude)) / _LOG_GAMMA)
    return np.where(magnitude < TINY, 0, np.sign(values) * index).astype("int64")


def from_values(values: Any) -> Sketch:
    """The sketch of one column; NaN and inf are dropped, like the exact statistics drop them."""
    array = np.asarray(values, dtype="float64").ravel()
    array = np.sort(array[np.isfinite(array)])
    ids = bucket_ids(array)  # ascending, since ids are monotone in the value
    if array.size == 0:
        return Sketch(bucket=ids, count=ids.copy(), low=array, high=array)
    starts = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    ends = np.r_[starts[1:], array.size].astype("int64")
    return Sketch(bucket=ids[starts], count=ends - starts, low=array[starts], high=array[ends - 1])


def from_frame(frame: Any, features: list[str]) -> dict[str, Sketch]:
    """Sketches of the named columns of a pandas frame (a training set)."""
    return {f: from_values(frame[f]) for f in features}


def of_frame(frame: Any) -> dict[str, Any]:
    """A training frame's reference statistics, JSON-ready: what a registered model carries."""
    columns = [str(c) for c in frame.columns]
    return to_json(from_frame(frame, columns), rows=len(frame))


def merge(parts: list[Sketch]) -> Sketch:
    """The sketch of all the parts' values together: exact, in any order or grouping."""
    bucket = np.concatenate([p.bucket for p in parts]) if parts else np.zeros(0, dtype="int64")
    ids, inverse = np.unique(bucket, return_inverse=True)
    count = np.zeros(ids.size, dtype="int64")
    low, high = np.full(ids.size, np.inf), np.full(ids.size, -np.inf)
    if parts:
        np.add.at(count, inverse, np.concatenate([p.count for p in parts]))
        np.minimum.at(low, inverse, np.concatenate([p.low for p in parts]))
        np.maximum.at(high, inverse, np.concatenate([p.high for p in parts]))
    return Sketch(bucket=ids.astype("int64"), count=count, low=low, high=high)


def from_table(frame: Any) -> dict[str, Sketch]:
    """Merge stored statistics rows (COLUMNS; any number of days) into one sketch per feature."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"feature statistics lack column(s) {missing}; expected {list(COLUMNS)}")
    merged: dict[str, Sketch] = {}
    for feature, rows in frame.groupby("feature", sort=True):
        part = Sketch(bucket=rows["bucket"].to_numpy("int64"), count=rows["count"].to_numpy("int64"),
                      low=rows["low"].to_numpy("float64"), high=rows["high"].to_numpy("float64"))
        merged[str(feature)] = merge([part])
    return merged


def to_json(sketches: dict[str, Sketch], *, rows: int) -> dict[str, Any]:
    """A JSON-ready form (the champion's reference artifact): a few KB per feature."""
    return {"format": FORMAT, "gamma": GAMMA, "rows": int(rows),
            "features": {f: {"bucket": s.bucket.tolist(), "count": s.count.tolist(), "low": s.low.tolist(),
                             "high": s.high.tolist()} for f, s in sketches.items()}}


def from_json(payload: dict[str, Any]) -> tuple[dict[str, Sketch], int]:
    """Sketches and training rows back from `to_json`; another bucket scheme is an error, not a guess."""
    if payload.get("format") != FORMAT:
        raise ValueError(f"reference statistics format {payload.get('format')!r}; this version reads {FORMAT!r}")
    sketches = {f: Sketch(bucket=np.asarray(v["bucket"], dtype="int64"), count=np.asarray(v["count"], dtype="int64"),
                          low=np.asarray(v["low"], dtype="float64"), high=np.asarray(v["high"], dtype="float64"))
                for f, v in payload["features"].items()}
    return sketches, int(payload["rows"])


def _spread(s: Sketch, j: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Rank position of x inside bucket j, with its values evenly spread from low (0) to high (count - 1)."""
    width = s.high[j] - s.low[j]
    safe = np.where(width > 0, width, 1.0)
    return np.where(width > 0, (x - s.low[j]) / safe * (s.count[j] - 1), 0.0)


def count_at_most(s: Sketch, x: Any) -> np.ndarray:
    """How many values are <= x (vectorized over x)."""
    x = np.asarray(x, dtype="float64")
    i = np.searchsorted(s.high, x, side="right")  # buckets wholly <= x
    counted = s.cumulative[i]
    j = np.minimum(i, s.bucket.size - 1)
    inside = (i < s.bucket.size) & (s.low[j] <= x)  # then x < high: part of bucket j
    part = np.clip(np.floor(_spread(s, j, x) + _EPS) + 1, 0, s.count[j] - 1)
    return counted + np.where(inside, part, 0)


def count_below(s: Sketch, x: Any) -> np.ndarray:
    """How many values are < x (vectorized over x)."""
    x = np.asarray(x, dtype="float64")
    i = np.searchsorted(s.high, x, side="left")  # buckets wholly < x
    counted = s.cumulative[i]
    j = np.minimum(i, s.bucket.size - 1)
    inside = (i < s.bucket.size) & (s.low[j] < x)  # then x <= high: part of bucket j
    part = np.clip(np.ceil(_spread(s, j, x) - _EPS), 0, s.count[j] - 1)
    return counted + np.where(inside, part, 0)


def value_at(s: Sketch, rank: np.ndarray) -> np.ndarray:
    """The rank-th smallest value (0-based), exact in single-valued buckets."""
    rank = np.asarray(rank, dtype="float64")
    j = np.searchsorted(s.cumulative[1:], rank, side="right")
    offset = rank - s.cumulative[j]
    steps = np.maximum(s.count[j] - 1, 1)
    return s.low[j] + (s.high[j] - s.low[j]) * np.minimum(offset / steps, 1.0)


def quantiles(s: Sketch, q: np.ndarray) -> np.ndarray:
    """numpy's default (linear) quantiles of the sketched values."""
    position = (s.n - 1) * np.asarray(q, dtype="float64")
    below = np.floor(position)
    lower, upper = value_at(s, below), value_at(s, np.minimum(below + 1, s.n - 1))
    t, step = position - below, upper - lower
    return np.where(t >= 0.5, upper - step * (1 - t), lower + step * t)  # numpy's own lerp, bit for bit
