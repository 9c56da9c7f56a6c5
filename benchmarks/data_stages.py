"""One stage of the data path, run in its own process by `make bench-data` (benchmarks/data_bench.py).

Each stage prints one JSON line: `seconds` is the stage's own work, after its imports, so a stage
and its by-hand counterpart compare the work and not Feast's import time (the runner measures the
process's wall time and peak RSS too). mlfleet's stages call what the DAG tasks call; the by-hand
ones are what a user could write on the same machine without mlfleet:

    materialize    repository.materialize            bulk-newest   DuckDB newest row per customer, one Feast write per view
    training-set   training_sets.training_set        duckdb-asof   DuckDB ASOF join of the same label rows and tables
    drift          sketch reference vs recent_statistics  numpy-drift   numpy PSI/KS over the window's rows and the training set
    online-read    Feast get_online_features, 1 and 100 entities (p50/p99)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

VIEWS = {
    "customer_spend": ["spend_7d", "spend_28d", "orders_7d", "orders_28d", "avg_amount_28d"],
    "customer_channels": ["app_share_28d", "store_share_28d", "categories_28d", "days_since_last_order"],
}
TTL = timedelta(days=3)
STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {}


def stage(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        STAGES[name] = fn
        return fn
    return register


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    from mlfleet.etl.interval import materialize_window

    return materialize_window({"start": args.start, "end": args.end})


def _settings() -> Any:
    from mlfleet.config import get_settings

    return get_settings()


def _warm_store(settings: Any) -> Any:
    """The store and its offline store's modules loaded before the clock starts, as the by-hand
    stages import DuckDB first: the comparison is of the work (imports are in the wall time)."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    from mlfleet.features import repository

    fs = repository.store(settings)
    get_offline_store_from_config(fs.config.offline_store)
    if fs.config.offline_store.type == "duckdb":
        import ibis

        ibis.get_backend()  # the DuckDB backend ibis loads on first use (entry points, ~0.7 s)
        # Feast's DuckDB store imports its MLflow data source (mlflow, typeguard: ~1.2 s at 1 M
        # events) on its first read of any source: an import, loaded here like the others.
        with contextlib.suppress(ImportError):
            import feast.infra.data_sources.mlflow.mlflow_dataset_source  # noqa: F401
    return fs


@stage("materialize")
def materialize(args: argparse.Namespace) -> dict[str, Any]:
    from mlfleet.features import repository

    settings = _settings()
    _warm_store(settings)
    start, end = _window(args)
    began = time.perf_counter()
    rows = repository.materialize(settings, start=start, end=end)
    return {"seconds": time.perf_counter() - began, "rows": rows}


@stage("bulk-newest")
def bulk_newest(args: argparse.Namespace) -> dict[str, Any]:
    import duckdb

    from mlfleet.features import repository

    settings = _settings()
    fs = repository.store(settings)
    start, end = _window(args)
    began = time.perf_counter()
    rows = {}
    for view, features in VIEWS.items():
        frame = duckdb.sql(f"""
            SELECT customer_id, {', '.join(features)}, event_timestamp
            FROM read_parquet('{settings.offline_dir / view}/*/*.parquet', hive_partitioning = true)
            WHERE event_timestamp >= '{start.isoformat()}' AND event_timestamp < '{end.isoformat()}'
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY event_timestamp DESC) = 1""").df()
        fs.write_to_online_store(view, frame)
        rows[view] = len(frame)
    return {"seconds": time.perf_counter() - began, "rows": rows}


def _entity_df(settings: Any) -> Any:
    from mlfleet.features import training_sets

    return training_sets.read_labels(settings)[["customer_id", "event_timestamp", "churned"]]


@stage("training-set")
def training_set(args: argparse.Namespace) -> dict[str, Any]:
    from mlfleet.features import training_sets

    settings = _settings()
    _warm_store(settings)
    began = time.perf_counter()
    frame = training_sets.training_set(settings, "churn_v1", entity_df=_entity_df(settings))
    seconds = time.perf_counter() - began
    frame.to_parquet(Path(args.home) / "bench-training-set.parquet", index=False)
    return {"seconds": seconds, "rows": len(frame)}


@stage("duckdb-asof")
def duckdb_asof(args: argparse.Namespace) -> dict[str, Any]:
    import duckdb
    import pandas as pd

    settings = _settings()
    began = time.perf_counter()
    con = duckdb.connect()
    con.register("entities", _entity_df(settings))
    selects, joins = [], []
    for k, (view, features) in enumerate(VIEWS.items()):
        joins.append(f"""ASOF LEFT JOIN read_parquet('{settings.offline_dir / view}/*/*.parquet', hive_partitioning = true) v{k}
            ON e.customer_id = v{k}.customer_id AND e.event_timestamp >= v{k}.event_timestamp""")
        fresh = f"v{k}.event_timestamp > e.event_timestamp - INTERVAL {TTL.days} DAY"
        selects += [f"COALESCE(CASE WHEN {fresh} THEN v{k}.{f} END, 0)::DOUBLE AS {f}" for f in features]
    frame = con.sql(f"SELECT e.*, {', '.join(selects)} FROM entities e {' '.join(joins)}").df()
    seconds = time.perf_counter() - began
    mine = pd.read_parquet(Path(args.home) / "bench-training-set.parquet")
    keys = ["event_timestamp", "customer_id"]
    a = frame.sort_values(keys).reset_index(drop=True)
    b = mine.sort_values(keys).reset_index(drop=True)
    features = [f for fs in VIEWS.values() for f in fs]
    # the same rows and values as mlfleet's training set, or the comparison means nothing
    same = len(a) == len(b) and bool(((a[features] - b[features]).abs() <= 1e-9).all().all())
    return {"seconds": seconds, "rows": len(frame), "same_as_mlfleet": same}


def _psi_ks_numpy(reference: Any, current: Any) -> tuple[float, float]:
    import numpy as np

    ref, cur = np.sort(reference[np.isfinite(reference)]), np.sort(current[np.isfinite(current)])
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    shares = [np.maximum(np.diff(np.searchsorted(x, edges, side="right"), prepend=0, append=x.size) / x.size, 1e-4)
              for x in (ref, cur)]
    psi = float(np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0])))
    points = np.concatenate([ref, cur])
    ks = float(np.max(np.abs(np.searchsorted(ref, points, side="right") / ref.size
                             - np.searchsorted(cur, points, side="right") / cur.size)))
    return psi, ks


@stage("drift")
def drift(args: argparse.Namespace) -> dict[str, Any]:
    """mlfleet's check: the champion's reference statistics against the window's per-day statistics.

    The reference is what finalize logs beside the model (made here from the training set, once,
    outside the timing); the MLflow lookup of the champion is left out on both sides.
    """
    import fsspec  # noqa: F401 - the modules the check loads, before the clock as numpy's are
    import pandas as pd
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    from mlfleet.drift import sketch, statistics
    from mlfleet.drift.window import recent_statistics

    settings = _settings()
    features = [f for fs in VIEWS.values() for f in fs]
    stored = Path(args.home) / "bench-reference-statistics.json"
    if not stored.exists():
        frame = pd.read_parquet(Path(args.home) / "bench-training-set.parquet", columns=features)
        stored.write_text(json.dumps(sketch.to_json(sketch.from_frame(frame, features), rows=len(frame))))
    began = time.perf_counter()
    reference, n_reference = sketch.from_json(json.loads(stored.read_text()))
    current, n_current = recent_statistics(settings, features=features, days=settings.drift_window_days)
    report = statistics.sketch_drift_report(
        reference=reference, current=current, features=features, n_reference=n_reference, n_current=n_current,
        psi_threshold=settings.drift_psi_threshold, ks_pvalue=settings.drift_ks_pvalue,
        ks_statistic=settings.drift_ks_statistic)
    return {"seconds": time.perf_counter() - began, "drifted": report["drifted_features"]}


@stage("numpy-drift")
def numpy_drift(args: argparse.Namespace) -> dict[str, Any]:
    """By hand: the newest window's rows and the training set's columns, PSI and KS in numpy."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    settings = _settings()
    began = time.perf_counter()
    last = datetime.fromisoformat(args.drift_end).date()
    first = (last - timedelta(days=settings.drift_window_days - 1)).isoformat()
    reference = pq.read_table(Path(args.home) / "bench-training-set.parquet")
    scores = {}
    for view, features in VIEWS.items():
        table = ds.dataset(str(settings.offline_dir / view), format="parquet", partitioning="hive")
        window = table.to_table(columns=features, filter=(ds.field("feature_date") >= first)
                                & (ds.field("feature_date") <= last.isoformat()))
        for f in features:
            scores[f] = _psi_ks_numpy(reference[f].to_numpy().astype("float64"), window[f].to_numpy().astype("float64"))
    return {"seconds": time.perf_counter() - began, "features": len(scores)}


@stage("online-read")
def online_read(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from mlfleet.features import repository

    settings = _settings()
    fs = repository.store(settings)
    service = fs.get_feature_service("churn_v1")
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"seconds": 0.0}
    for batch in (1, 100):
        fs.get_online_features(features=service, entity_rows=[{"customer_id": 1}]).to_dict()  # warm
        latencies = []
        for _ in range(args.reads):
            rows = [{"customer_id": int(c)} for c in rng.integers(1, args.customers + 1, batch)]
            began = time.perf_counter()
            fs.get_online_features(features=service, entity_rows=rows).to_dict()
            latencies.append((time.perf_counter() - began) * 1000)
        out[f"p50_{batch}_ms"], out[f"p99_{batch}_ms"] = (float(np.percentile(latencies, q)) for q in (50, 99))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--home", required=True)
    parser.add_argument("--start", default="2026-08-01")
    parser.add_argument("--end", default="2026-09-18")
    parser.add_argument("--drift-end", default="2026-10-23", help="the drift window's last feature day")
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    os.environ["MLFLEET_HOME"] = args.home
    print(json.dumps({"stage": args.stage, **STAGES[args.stage](args)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
