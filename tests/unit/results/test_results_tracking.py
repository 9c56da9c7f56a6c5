"""MLflow tracking (a sweep's run, its trial runs and table) against real MLflow on SQLite under a
temporary MLFLEET_HOME; one store per module (creating one costs ~3 s)."""

import csv
import random

from mlfleet import results
from mlfleet.results.tracking import ROLE_TAG, SWEEP_TAG, TRIAL_RUNS_TAG, TRIAL_TAG, TRIALS_TABLE


def client(settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def test_a_local_store_is_in_wal_mode_once_opened(settings):
    import sqlite3

    results.tracking.configure(settings)
    database = settings.tracking_uri.removeprefix("sqlite:///")
    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("SELECT count(*) FROM experiments").fetchone()[0] >= 1  # MLflow's tables are there
    finally:
        connection.close()


def count_runs(settings, experiment, run_id, role):
    exp = client(settings).get_experiment_by_name(experiment)
    query = f"tags.`{SWEEP_TAG}` = '{run_id}' and tags.`{ROLE_TAG}` = '{role}'"
    return client(settings).search_runs([exp.experiment_id], filter_string=query, max_results=1000)


def trials_table(settings, parent, tmp_path):
    """The parent run's leaderboard.csv, as dicts."""
    local = client(settings).download_artifacts(parent.info.run_id, TRIALS_TABLE, str(tmp_path))
    with open(local, newline="") as f:
        return list(csv.DictReader(f))


ROWS = [
    {"trial_id": f"xgboost-{i}", "model": "xgboost", "params": {"max_depth": i, "booster": "gbtree"},
     "fold_scores": [0.9, 0.8], "mean_score": 0.85, "std_score": 0.05, "fit_seconds": 1.25, "status": "success",
     "error": None}
    for i in range(3)
] + [{"trial_id": "lr-x", "model": "logistic_l1", "params": {"C": -1.0}, "fold_scores": None, "mean_score": None,
      "std_score": None, "fit_seconds": 0.5, "status": "failed", "error": "ValueError: C must be positive"}]


def test_log_trials_is_idempotent(settings, tmp_path):
    assert results.log_trials(settings=settings, experiment="sweeps", run_id="r1", rows=ROWS, metric="roc_auc") == 4
    assert results.log_trials(settings=settings, experiment="sweeps", run_id="r1", rows=ROWS, metric="roc_auc") == 0
    children = count_runs(settings, "sweeps", "r1", "trial")
    (parent,) = count_runs(settings, "sweeps", "r1", "sweep")
    assert len(children) == 4
    assert parent.info.run_name == "r1" and parent.info.status == "FINISHED"
    exp = client(settings).get_experiment_by_name("sweeps")
    assert exp.artifact_location == settings.artifact_root.as_uri()

    by_id = {r.data.tags["mlfleet.trial_id"]: r for r in children}
    ok = by_id["xgboost-2"]
    assert ok.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert ok.data.params == {"max_depth": "2", "booster": "gbtree", "model": "xgboost"}
    assert ok.data.metrics == {"mean_roc_auc": 0.85, "std_roc_auc": 0.05, "fold_1_roc_auc": 0.9,
                               "fold_2_roc_auc": 0.8, "fit_seconds": 1.25}
    bad = by_id["lr-x"]
    assert (bad.info.status, bad.data.tags["mlfleet.status"]) == ("FAILED", "failed")
    assert bad.data.tags["mlfleet.error"] == "ValueError: C must be positive"
    assert bad.data.metrics == {"fit_seconds": 0.5}

    extra = {**ROWS[0], "trial_id": "xgboost-9"}
    more = ROWS + [extra]
    assert results.log_trials(settings=settings, experiment="sweeps", run_id="r1", rows=more, metric="roc_auc") == 1
    assert len(count_runs(settings, "sweeps", "r1", "trial")) == 5
    (parent,) = count_runs(settings, "sweeps", "r1", "sweep")
    table = trials_table(settings, parent, tmp_path)  # rewritten, not appended to, by each call
    assert sorted(r["trial_id"] for r in table) == sorted(r["trial_id"] for r in more)
    assert parent.data.tags[TRIAL_RUNS_TAG] == "5/5"


def sweep_rows(n_ok, n_failed, seed=0):
    """Distinct scores, shuffled: the best are not simply the first rows."""
    rng = random.Random(seed)
    ok = [{"trial_id": f"logistic-l1-{i:08x}", "model": "logistic_l1", "params": {"C": i / 10},
           "fold_scores": [round(i / 100 - 0.01, 4), round(i / 100 + 0.01, 4)], "mean_score": i / 100,
           "std_score": 0.01, "fit_seconds": 0.1, "status": "success", "error": None} for i in range(n_ok)]
    bad = [{"trial_id": f"mlp-{i:08x}", "model": "mlp", "params": {"hidden": i}, "fold_scores": None,
            "mean_score": None, "std_score": None, "fit_seconds": 0.2, "status": "failed",
            "error": f"RuntimeError: CUDA out of memory ({i})"} for i in range(n_failed)]
    rows = ok + bad
    rng.shuffle(rows)
    return rows


def test_above_the_limit_the_best_are_runs_and_every_trial_is_in_the_table(settings, tmp_path):
    limited = settings.model_copy(update={"mlflow_trial_runs": 3})
    rows = sweep_rows(8, 2)
    log = dict(settings=limited, experiment="big", run_id="r2", rows=rows, metric="accuracy")
    assert results.log_trials(**log) == 3
    assert results.log_trials(**log) == 0

    children = count_runs(settings, "big", "r2", "trial")
    assert sorted(r.data.tags[TRIAL_TAG] for r in children) == [f"logistic-l1-{i:08x}" for i in (5, 6, 7)]
    best = next(r for r in children if r.data.tags[TRIAL_TAG] == "logistic-l1-00000007")
    assert (best.info.status, best.data.tags["mlfleet.status"]) == ("FINISHED", "success")
    assert best.data.params == {"C": "0.7", "model": "logistic_l1"}
    assert best.data.metrics == {"mean_accuracy": 0.07, "std_accuracy": 0.01, "fold_1_accuracy": 0.06,
                                 "fold_2_accuracy": 0.08, "fit_seconds": 0.1}

    (parent,) = count_runs(settings, "big", "r2", "sweep")
    assert parent.info.status == "FINISHED" and parent.data.tags[TRIAL_RUNS_TAG] == "3/10"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    table = trials_table(settings, parent, tmp_path)
    assert [r["trial_id"] for r in table] == [f"logistic-l1-{i:08x}" for i in range(7, -1, -1)] + \
        ["mlp-00000000", "mlp-00000001"]
    assert [r["rank"] for r in table] == [str(k) for k in range(1, 9)] + ["", ""]
    assert table[0]["mean_score"] == "0.07" and table[0]["param.C"] == "0.7"
    assert (table[-1]["status"], table[-1]["error"]) == ("failed", "RuntimeError: CUDA out of memory (1)")


def test_failed_trials_are_failed_runs_with_their_error(settings):
    rows = sweep_rows(1, 2)
    rows.append({**rows[0], "trial_id": "nan-score", "mean_score": float("nan")})  # "success" it cannot rank
    assert results.log_trials(settings=settings, experiment="failures", run_id="r3", rows=rows, metric="r2") == 4
    by_id = {r.data.tags[TRIAL_TAG]: r for r in count_runs(settings, "failures", "r3", "trial")}
    assert set(by_id) == {"logistic-l1-00000000", "mlp-00000000", "mlp-00000001", "nan-score"}
    oom = by_id["mlp-00000001"]
    assert (oom.info.status, oom.data.tags["mlfleet.status"]) == ("FAILED", "failed")
    assert oom.data.tags["mlfleet.error"] == "RuntimeError: CUDA out of memory (1)"
    assert oom.data.params == {"hidden": "1", "model": "mlp"} and oom.data.metrics == {"fit_seconds": 0.2}
    nan = by_id["nan-score"]  # the leaderboard reports it failed: so does its run
    assert (nan.info.status, nan.data.tags["mlfleet.status"], nan.data.tags["mlfleet.error"]) == \
        ("FAILED", "failed", "no finite mean_score")


def test_a_run_left_running_by_a_dead_attempt_is_completed_not_duplicated(settings):
    rows = sweep_rows(4, 0)
    first = dict(settings=settings, experiment="crash", run_id="r4", rows=rows, metric="roc_auc")
    assert results.log_trials(**{**first, "rows": rows[:1]}) == 1
    (parent,) = count_runs(settings, "crash", "r4", "sweep")
    exp_id = client(settings).get_experiment_by_name("crash").experiment_id
    # What an attempt killed between create_run and set_terminated leaves: a RUNNING run with its tags.
    # It ranks 3rd or 4th of 4, so the limit of 2 below would not choose it.
    worst = min(rows[1:], key=lambda r: r["mean_score"])
    tags = {"mlflow.parentRunId": parent.info.run_id, SWEEP_TAG: "r4", ROLE_TAG: "trial",
            TRIAL_TAG: worst["trial_id"], "mlfleet.status": "success", "mlfleet.error": ""}
    stuck = client(settings).create_run(exp_id, run_name=worst["trial_id"], tags=tags).info.run_id

    limited = settings.model_copy(update={"mlflow_trial_runs": 2})
    results.log_trials(**{**first, "settings": limited})
    children = count_runs(settings, "crash", "r4", "trial")
    ids = [r.data.tags[TRIAL_TAG] for r in children]
    assert len(ids) == len(set(ids)) and worst["trial_id"] in ids
    assert all(r.info.status == "FINISHED" for r in children)
    completed = client(settings).get_run(stuck)
    assert completed.data.metrics["mean_roc_auc"] == worst["mean_score"]
    assert results.log_trials(**{**first, "settings": limited}) == 0
    assert len(count_runs(settings, "crash", "r4", "trial")) == len(children)
