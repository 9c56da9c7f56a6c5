"""The whole loop through real Airflow DAG runs (`dag.test()`), real Spark, Feast, MLflow, Optuna:

events -> feature_pipeline (before the shift) -> experiment_sweep -> feature_pipeline (after)
-> drift_monitor -> retrain -> promotion decision.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
START = date(2026, 8, 1)
DAYS, SHIFT = 56, 35  # 8 weeks of events, the shift after 5: enough for a drift, few daily files
SPEC = {
    "name": "churn-e2e",
    "task": "classification",
    "target": "churned",
    "metric": "roc_auc",
    "dataset": {"feature_service": "churn_v1"},
    "cv": {"folds": 3, "seed": 0},
    "search": {"strategy": "grid"},
    "models": [
        {"type": "logistic_l1", "params": {"C": [0.1, 1.0]}},
        {"type": "random_forest", "params": {"n_estimators": [30], "max_depth": [3, 6]}},
    ],
    "budget": {"max_parallel": 2, "timeout_minutes": 10},
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loop_env(airflow_db, tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e") / "home"
    patch = pytest.MonkeyPatch()
    for key, value in {
        "MLFLEET_HOME": str(home), "MLFLEET_DEMO_CUSTOMERS": "250", "MLFLEET_DEMO_DAYS": str(DAYS),
        "MLFLEET_DEMO_SHIFT_DAY": str(SHIFT), "MLFLEET_RETRAIN_TRIALS": "4", "MLFLEET_RETRAIN_BATCH_SIZE": "2",
    }.items():
        patch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    from mlfleet.demo import events
    from mlfleet.config import get_settings

    settings = get_settings()
    events.generate_demo_raw_zone(settings)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    yield settings, bag.dags
    patch.undo()


def _interval(first: int, last: int) -> dict[str, str]:
    return {"start": str(START + timedelta(days=first)), "end": str(START + timedelta(days=last))}


def _success(run) -> None:
    assert run.state == "success", f"{run.dag_id} ended {run.state}"


def _through_last_round(dag, run):
    """`dag.test()` runs one DAG run; a bayes sweep's later rounds are continuation runs it leaves
    queued for a scheduler (docs/rounds.md). Run each the way the scheduler would, in place of the
    queued run, until the round that finished the sweep; return that run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    while True:
        _success(run)
        queued = [r for r in DagRun.find(dag_id=dag.dag_id, state="queued") if (r.conf or {}).get("sweep")]
        if not queued:
            return run
        [continuation] = queued
        conf = continuation.conf
        with create_session() as session:
            session.query(DagRun).filter(DagRun.id == continuation.id).delete()
        run = dag.test(run_conf=conf)


def test_full_loop(loop_env) -> None:
    from airflow.models.dagrun import DagRun

    from mlfleet import results
    from mlfleet.features.repository import store

    settings, dags = loop_env
    before = _interval(0, SHIFT - 1)

    # 1. features for the weeks before the shift; a re-run of the same interval duplicates nothing
    _success(dags["feature_pipeline"].test(logical_date=pd.Timestamp(before["end"], tz="UTC"), run_conf=before))
    table = settings.offline_dir / "customer_spend"
    first_count = len(pd.read_parquet(table))
    assert first_count > 1000
    _success(dags["feature_pipeline"].test(logical_date=pd.Timestamp(before["end"], tz="UTC") + pd.Timedelta(hours=1), run_conf=before))
    assert len(pd.read_parquet(table)) == first_count
    online = store(settings).get_online_features(features=["customer_spend:spend_28d"], entity_rows=[{"customer_id": c} for c in range(1, 40)]).to_dict()
    assert any(v is not None for v in online["spend_28d"])

    # 2. a sweep on the point-in-time training set; the best model becomes the first champion
    sweep_run = dags["experiment_sweep"].test(run_conf={"spec": SPEC})
    _success(sweep_run)
    runs = sorted((settings.experiments_dir / "churn-e2e").iterdir())
    board = json.loads((runs[-1] / "leaderboard.json").read_text())
    assert len(board["trials"]) == 4 and all(t["status"] == "success" for t in board["trials"])
    assert board["best"]["mean_score"] > 0.6  # recent activity predicts churn
    champion = results.champion(settings, "churn-e2e")
    assert champion is not None and champion["tags"]["mlfleet.feature_service"] == "churn_v1"

    # 3. new data after the shift arrives
    after = _interval(SHIFT, DAYS - 1)
    _success(dags["feature_pipeline"].test(logical_date=pd.Timestamp(after["end"], tz="UTC"), run_conf=after))

    # 4. the drift check sees the shift and triggers retrain with the drifted features named
    _success(dags["drift_monitor"].test())
    report = json.loads(sorted((settings.drift_dir / "churn-e2e").glob("*.json"))[-1].read_text())
    assert report["drift"] is True and report["drifted_features"]
    triggered = [r for r in DagRun.find(dag_id="retrain") if (r.conf or {}).get("model") == "churn-e2e"]
    assert triggered, "drift_monitor did not trigger retrain"
    assert triggered[-1].run_id.startswith("retrain__churn-e2e__v1__")  # deterministic: a retried trigger is skipped
    conf = triggered[-1].conf
    assert conf["drifted_features"] == report["drifted_features"]

    # 5. retrain: Optuna warm-started from the sweep, challenger vs champion on the same holdout.
    # Running the triggered run's logical date replaces that queued run: nothing runs twice.
    first_round = dags["retrain"].test(logical_date=triggered[-1].logical_date, run_conf=conf)
    assert not [r for r in DagRun.find(dag_id="retrain") if r.state == "queued" and not (r.conf or {}).get("sweep")]
    last_round = _through_last_round(dags["retrain"], first_round)
    assert last_round.conf["round"] == 1  # 4 trials in batches of 2: two rounds, the second finalizes
    decision = json.loads(sorted((settings.decisions_dir / "churn-e2e").glob("*.json"))[-1].read_text())
    assert decision["champion_version"] == str(champion["version"])
    assert decision["warm_started_trials"] == 4
    assert decision["promoted"] == (decision["challenger_score"] > decision["champion_score"])
    now = results.champion(settings, "churn-e2e")
    expected = decision["challenger_version"] if decision["promoted"] else decision["champion_version"]
    assert str(now["version"]) == expected
