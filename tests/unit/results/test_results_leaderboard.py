import csv
import io
import json

from mlfleet.results import build_leaderboard, read_leaderboard, write_leaderboard


def row(trial_id, model, params, folds, *, error=None):
    if error:
        return {"trial_id": trial_id, "model": model, "params": params, "fold_scores": None, "mean_score": None,
                "std_score": None, "fit_seconds": 0.5, "status": "failed", "error": error}
    mean = sum(folds) / len(folds)
    return {"trial_id": trial_id, "model": model, "params": params, "fold_scores": folds, "mean_score": mean,
            "std_score": 0.01, "fit_seconds": 1.5, "status": "success", "error": None}


ROWS = [
    row("rf-b", "random_forest", {"n_estimators": 100, "max_depth": None}, [0.80, 0.82, 0.84]),
    row("xgb-z", "xgboost", {"max_depth": 3, "learning_rate": 0.1}, [0.90, 0.92, 0.94]),
    row("lr-c", "logistic_l1", {"C": 1.0}, [0.50, 0.0, 1.0], error=None),
    row("xgb-a", "xgboost", {"max_depth": 7, "learning_rate": 0.3}, None, error="ValueError: boom"),
    row("lr-a", "logistic_l1", {"C": -1}, None, error="ValueError: C must be positive"),
]


def board():
    return build_leaderboard(experiment="churn", run_id="r1", metric="roc_auc", results_uri="file:///x", rows=ROWS)


def test_sorted_best_first_failed_last_with_null_scores():
    lb = board()
    assert [t["trial_id"] for t in lb["trials"]] == ["xgb-z", "rf-b", "lr-c", "lr-a", "xgb-a"]
    assert lb["best"] == {"trial_id": "xgb-z", "model": "xgboost", "params": {"max_depth": 3, "learning_rate": 0.1},
                          "mean_score": ROWS[1]["mean_score"]}
    assert (lb["experiment"], lb["run_id"], lb["metric"], lb["results_uri"]) == ("churn", "r1", "roc_auc", "file:///x")
    assert (lb["n_trials"], lb["n_failed"]) == (5, 2)
    for failed in lb["trials"][3:]:
        assert failed["status"] == "failed" and failed["error"].startswith("ValueError")
        assert failed["mean_score"] is None and failed["std_score"] is None and failed["fold_scores"] is None


def test_success_without_a_score_counts_as_failed_and_no_success_means_no_best():
    broken = {**ROWS[0], "trial_id": "odd", "mean_score": float("nan")}
    lb = build_leaderboard(experiment="e", run_id="r", metric="m", results_uri="u", rows=[broken, ROWS[3]])
    assert lb["best"] is None
    summary = [(t["trial_id"], t["status"], t["mean_score"]) for t in lb["trials"]]
    assert summary == [("odd", "failed", None), ("xgb-a", "failed", None)]


def test_csv_columns_and_json_round_trip(tmp_path):
    lb = board()
    paths = write_leaderboard(tmp_path / "out", lb)
    assert read_leaderboard(tmp_path / "out") == json.loads(json.dumps(lb))
    with paths["csv"].open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["rank", "trial_id", "model", "status", "mean_score", "std_score", "fit_seconds",
                                 "fold_1", "fold_2", "fold_3", "params", "error", "param.C", "param.learning_rate",
                                 "param.max_depth", "param.n_estimators"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "", ""]
    top = rows[0]
    assert (top["trial_id"], top["fold_2"], top["param.max_depth"], top["param.C"]) == ("xgb-z", "0.92", "3", "")
    assert json.loads(top["params"]) == {"max_depth": 3, "learning_rate": 0.1}
    assert rows[-1]["error"] == "ValueError: boom" and rows[-1]["mean_score"] == ""
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_csv_text_a_spreadsheet_would_run_is_defused_and_numbers_stay_numbers():
    """OWASP's CSV-injection rule: text starting with = + - @ tab or CR gets a leading apostrophe."""
    hostile = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    rows = [row(f"t{k}", value, {"kernel": value, "alpha": -0.5}, [-0.25, -0.75]) for k, value in enumerate(hostile)]
    rows.append(row("bad", "svm", {"kernel": "rbf", "alpha": -1}, None, error="=cmd|' /C calc'!A0"))
    lb = build_leaderboard(experiment="e", run_id="r", metric="neg_log_loss", results_uri="u", rows=rows)
    from mlfleet.results.leaderboard import to_csv

    table = list(csv.DictReader(io.StringIO(to_csv(lb), newline="")))
    for value in hostile:
        (found,) = [r for r in table if r["model"] == f"'{value}"]
        assert found["param.kernel"] == f"'{value}"
        # Numbers are written as numbers: a negative score or param is not text to defuse.
        assert (found["mean_score"], found["fold_1"], found["param.alpha"]) == ("-0.5", "-0.25", "-0.5")
    failed = next(r for r in table if r["trial_id"] == "bad")
    assert failed["error"] == "'=cmd|' /C calc'!A0" and failed["param.kernel"] == "rbf" and failed["param.alpha"] == "-1"
