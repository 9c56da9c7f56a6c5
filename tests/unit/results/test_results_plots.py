from mlfleet.results import build_leaderboard, parallel_coordinates_html
from mlfleet.results.plots import dimensions


def trial(trial_id, model, params, score, status="success"):
    ok = status == "success"
    return {"trial_id": trial_id, "model": model, "params": params, "fold_scores": [score] * 3 if ok else None,
            "mean_score": score if ok else None, "std_score": 0.0 if ok else None, "fit_seconds": 1.0,
            "status": status, "error": None if ok else "RuntimeError: out of memory"}


def board(rows):
    return build_leaderboard(experiment="exp", run_id="r1", metric="roc_auc", results_uri="u", rows=rows)


def test_mixed_params_plot(tmp_path):
    rows = [
        trial("a", "xgboost", {"max_depth": 3, "booster": "gbtree"}, 0.9),
        trial("b", "random_forest", {"max_depth": None, "n_estimators": 100}, 0.8),
        trial("c", "logistic_l1", {"C": 0.1}, 0.7),
        trial("d", "xgboost", {"max_depth": 5}, None, status="failed"),
    ]
    lb = board(rows)
    dims = {d["label"]: d for d in dimensions(lb)}
    assert list(dims) == ["C", "booster", "max_depth", "n_estimators", "model", "roc_auc"]
    assert dims["roc_auc"]["values"] == [0.9, 0.8, 0.7]
    assert dims["model"]["ticktext"] == ["logistic_l1", "random_forest", "xgboost"]
    assert dims["model"]["values"] == [2, 1, 0]
    assert dims["booster"]["ticktext"] == ["gbtree", "n/a"]
    # numeric with gaps: real values kept, the gap sits on a labelled tick below the axis
    depth = dims["max_depth"]
    assert depth["values"][0] == 3.0 and depth["values"][1] == depth["values"][2] < 3.0
    assert depth["ticktext"][0] == "None/n/a"
    path = parallel_coordinates_html(lb, tmp_path / "plots" / "parallel.html")
    text = path.read_text()
    assert "parcoords" in text and "plotly" in text.lower()
    assert len(text) > 1_000_000  # plotly.js inlined: the page works offline


def test_single_trial_and_failed_only(tmp_path):
    one = parallel_coordinates_html(board([trial("a", "xgboost", {"max_depth": 3}, 0.9)]), tmp_path / "one.html")
    assert "parcoords" in one.read_text()
    failed = board([trial("d", "xgboost", {"max_depth": 5}, None, status="failed")])
    text = parallel_coordinates_html(failed, tmp_path / "none.html").read_text()
    assert "No successful trials" in text and "RuntimeError: out of memory" in text and "parcoords" not in text
