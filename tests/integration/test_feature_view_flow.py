"""A data engineer adds one feature view file; it flows through with no DAG edit.

The new view (and a feature service using it) is one new file in a copy of feature_repo/. One
feature_pipeline run (real Spark, feast apply, materialize) computes it, the online store serves
it, a point-in-time training set through the new service carries it, and the drift check of a
model trained on that service examines it.
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

NEW_VIEW = textwrap.dedent('''
    """Electronics spend share over the trailing 14 days (added by a data engineer)."""

    import inspect
    from datetime import timedelta

    from feast import FeatureService, Field
    from feast.batch_feature_view import BatchFeatureView
    from feast.types import Float64, Int64

    from customer_channels import customer_channels
    from customer_spend import customer_spend
    from entities import customer
    from sources import events, offline_table


    def electronics_features(events, feature_dates):
        from pyspark.sql import functions as F

        window = feature_dates.join(
            events,
            (events.event_date > F.date_sub(feature_dates.feature_date, 14))
            & (events.event_date <= feature_dates.feature_date),
        )
        electronics = F.when(F.col("category") == "electronics", F.col("amount")).otherwise(0.0)
        return window.groupBy("customer_id", "feature_date").agg(
            (F.sum(electronics) / F.sum("amount")).alias("electronics_share_14d"),
        )


    customer_electronics = BatchFeatureView(
        name="customer_electronics",
        mode="python",
        udf=electronics_features,
        udf_string=inspect.getsource(electronics_features),
        source=[events],
        sink_source=offline_table("customer_electronics"),
        entities=[customer],
        ttl=timedelta(days=3),
        schema=[Field(name="customer_id", dtype=Int64), Field(name="electronics_share_14d", dtype=Float64)],
        online=True,
        offline=True,
    )

    churn_v2 = FeatureService(name="churn_v2", features=[customer_spend, customer_channels, customer_electronics])
''')

pytestmark = pytest.mark.slow


def test_new_view_file_flows_to_training_set(airflow_db, tmp_path, monkeypatch) -> None:
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo)
    (repo / "customer_electronics.py").write_text(NEW_VIEW)
    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLEET_FEATURE_REPO", str(repo))

    from airflow.dag_processing.dagbag import DagBag

    from mlfleet import sweep
    from mlfleet.demo import events
    from mlfleet.drift import monitor as monitoring
    from mlfleet.features import repository as features
    from mlfleet.config import get_settings

    settings = get_settings()
    raw = events.generate_events(customers=120, start=pd.Timestamp("2026-08-01").date(), days=42, seed=3, shift_day=35)
    events.write_raw_zone(raw, settings.raw_events_dir)
    conf = {"start": "2026-08-01", "end": "2026-09-11"}
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["feature_pipeline"]
    run = dag.test(logical_date=pd.Timestamp("2026-09-11", tz="UTC"), run_conf=conf)
    assert run.state == "success"

    # computed by the ETL from the view's own transformation, one partition per day
    table = pd.read_parquet(settings.offline_dir / "customer_electronics")
    assert table["feature_date"].nunique() == 42
    assert table["electronics_share_14d"].between(0, 1).all() and table["electronics_share_14d"].std() > 0

    # and, beside it, each day's statistics of the view's features: what the drift check reads
    from mlfleet.drift import sketch

    stats = pd.read_parquet(settings.offline_dir / "_stats" / "customer_electronics")
    assert stats["feature_date"].nunique() == 42 and set(stats["feature"]) == {"electronics_share_14d"}
    last = table[table["feature_date"].astype(str) == "2026-09-11"]["electronics_share_14d"]
    day = sketch.from_table(stats[stats["feature_date"].astype(str) == "2026-09-11"])["electronics_share_14d"]
    assert day.n == last.notna().sum() and day.low.tolist() == sketch.from_values(last).low.tolist()
    spend_stats = pd.read_parquet(settings.offline_dir / "_stats" / "customer_spend")
    assert set(spend_stats["feature"]) == {"spend_7d", "spend_28d", "orders_7d", "orders_28d", "avg_amount_28d"}

    # served online after materialize
    fs = features.store(settings)
    online = fs.get_online_features(features=["customer_electronics:electronics_share_14d"],
                                    entity_rows=[{"customer_id": c} for c in range(1, 60)]).to_dict()
    assert sum(v is not None for v in online["electronics_share_14d"]) > 10

    # in a point-in-time training set through the new service
    spec = {"name": "churn-v2", "task": "classification", "target": "churned", "metric": "roc_auc",
            "dataset": {"feature_service": "churn_v2"}, "cv": {"folds": 3, "seed": 0},
            "models": [{"type": "logistic_l1", "params": {"C": [1.0]}}]}
    board = sweep.run_sweep(spec, settings=settings)
    context = json_load(Path(board["results_uri"].removeprefix("file://")) / "context.json")
    assert "electronics_share_14d" in context["features"]
    frame = pd.read_parquet(context["data_path"])
    assert frame["electronics_share_14d"].notna().all() and frame["electronics_share_14d"].max() > 0

    # and the drift check of a model trained on it looks at it
    report = monitoring.check_model(settings, "churn-v2")
    assert "electronics_share_14d" in report["features"]
    # a retried check of one drift_monitor run rewrites its report rather than adding one
    run = monitoring.MonitorRun(run_id="asset_triggered__2026-12-01T10:00:00+00:00", started=datetime(2026, 12, 1, 10))
    paths = {monitoring.check_model(settings, "churn-v2", run=run)["report_path"] for _ in range(2)}
    assert len(paths) == 1 and Path(paths.pop()).name.startswith("20261201T100000-")


def json_load(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
