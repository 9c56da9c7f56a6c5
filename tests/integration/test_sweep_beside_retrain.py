"""A sweep beside a retrain of the same model, at once through the real scheduler (`mlfleet up`,
both triggered over REST): neither clobbers the other's results, study or registry version, and
the champion moves only by the retrain's decision, against the version it was prepared with.

The model's first version comes from `run_sweep` on a timestamped Parquet dataset (a retrain
holds out its newest window), so both runs start from the same registered champion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from services import airflow_stack

pytestmark = pytest.mark.slow
NAME = "churnish"
FEATURES = [f"f{i}" for i in range(6)]


def write_dataset(path: Path) -> Path:
    """600 rows over 60 days, a signal in two features: enough for a 14-day holdout with both classes."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(600, len(FEATURES))), columns=FEATURES)
    frame["target"] = (frame["f0"] + 0.5 * frame["f1"] + rng.normal(scale=0.8, size=600) > 0).astype(int)
    frame["customer_id"] = np.arange(600) % 150 + 1
    frame["event_timestamp"] = pd.Timestamp("2026-09-01", tz="UTC") + pd.to_timedelta(np.arange(600) * 144, unit="m")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def spec(dataset: Path) -> dict[str, Any]:
    return {"name": NAME, "task": "classification", "target": "target", "metric": "roc_auc",
            "dataset": {"path": str(dataset), "features": FEATURES}, "cv": {"folds": 3, "seed": 0},
            "models": [{"type": "logistic_l1", "params": {"C": [0.01, 0.1, 1.0, 10.0]}}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {"MLFLEET_LOCAL_WORKERS": "1", "MLFLEET_RETRAIN_TRIALS": "4", "MLFLEET_RETRAIN_BATCH_SIZE": "4"}
    with airflow_stack(tmp_path_factory.mktemp("beside") / "mlfleet", ["experiment_sweep", "retrain"], env) as stack:
        yield stack


def test_a_sweep_beside_a_retrain_of_its_model_keeps_both_apart(stack: Any) -> None:
    from mlflow import MlflowClient

    from mlfleet.results.leaderboard import read_leaderboard
    from mlfleet.sweep import run_id_from_airflow, run_sweep
    from mlfleet.tuning import load_study

    settings, api = stack
    the_spec = spec(write_dataset(settings.home_dir / "data" / "churnish.parquet"))
    first = run_sweep(the_spec, settings=settings)
    assert first["registered_model"]["version"] == "1" and first["registered_model"]["alias"] == "champion"

    sweep_id = api.trigger("experiment_sweep", {"spec": the_spec})["dag_run_id"]
    retrain_id = api.trigger("retrain", {"model": NAME})["dag_run_id"]
    runs = {"experiment_sweep": sweep_id, "retrain": retrain_id}
    assert {dag: api.wait_for_run(dag, run, timeout=600) for dag, run in runs.items()} == {
        "experiment_sweep": "success", "retrain": "success"}
    finished = [api.dag_run(dag, run) for dag, run in runs.items()]
    assert max(r["start_date"] for r in finished) < min(r["end_date"] for r in finished), "the two runs did not overlap"

    sweep_run, retrain_run = run_id_from_airflow(sweep_id), run_id_from_airflow(retrain_id)
    root = settings.experiments_dir / NAME
    assert {p.name for p in root.iterdir()} == {first["run_id"], sweep_run, retrain_run}
    sweep_board, retrain_board = read_leaderboard(root / sweep_run), read_leaderboard(root / retrain_run)
    assert sweep_board["run_id"] == sweep_run and retrain_board["run_id"] == retrain_run
    assert [t["mean_score"] for t in sweep_board["trials"]] == [t["mean_score"] for t in first["trials"]]  # seeded: same grid, same scores
    assert len(retrain_board["trials"]) == 4 and len({t["trial_id"] for t in retrain_board["trials"]}) == 4

    sweep_study = load_study(storage=settings.optuna_storage, name=f"{NAME}.{sweep_run}")
    assert len(sweep_study.trials) == 4
    decision = json.loads((root / retrain_run / "decision.json").read_text())
    retrain_study = load_study(storage=settings.optuna_storage, name=f"{NAME}.{retrain_run}")
    told = [t for t in retrain_study.trials if t.state == TrialState.COMPLETE]
    assert len(retrain_study.trials) == len(told) == decision["warm_started_trials"] + 4

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    versions = {str(v.version): v.tags["mlfleet.sweep_run_id"] for v in client.search_model_versions(f"name = '{NAME}'")}
    assert versions == {"1": first["run_id"], sweep_board["registered_model"]["version"]: sweep_run,
                        decision["challenger_version"]: retrain_run}  # three versions, one per run
    assert decision["champion_version"] == "1"
    champion = str(client.get_registered_model(NAME).aliases["champion"])
    assert champion == (decision["challenger_version"] if decision["promoted"] else "1")  # the sweep never takes it
