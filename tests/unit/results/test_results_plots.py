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


def _strings(node):
    """Every string in a figure dict (keys too), where plotly could meet it."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_text_from_specs_and_results_reaches_plotly_escaped():
    """plotly draws a subset of HTML in tick labels, hover text, legends and titles: a param value,
    param name, model or metric from a spec is shown as text, never read as markup."""
    import html

    from mlfleet.results import figures

    link = "<a href='javascript:alert(1)'>x</a>"
    rows = [
        trial("t1", "<img src=x onerror=alert(1)>", {"kernel": link, "<b>depth</b>": 3}, 0.9),
        trial("t2", "svm & co", {"kernel": "rbf", "<b>depth</b>": 4}, 0.8),
    ]
    lb = build_leaderboard(experiment="exp", run_id="r1", metric="<i>auc</i>", results_uri="u", rows=rows)
    made = {
        "parallel": figures.parallel_coordinates({"trials": lb["trials"], "metric": lb["metric"]}),
        "history": figures.optimization_history(lb["trials"], lb["metric"]),
        "by_param": [p["figure"] for p in figures.score_by_param(lb["trials"], lb["metric"])],
        "importance": figures.importance_bars({"<svg onload=alert(1)>": {link: 0.7, "C": 0.3}}),
        "drift": figures.drift_histogram("<script>f</script>", {"edges": [0, 1, 2], "reference": [0.5, 0.5],
                                                               "current": [0.2, 0.8]}),
    }
    for name, figure in made.items():
        assert not [s for s in _strings(figure) if "<" in s or ">" in s], name
    dims = {d["label"]: d for d in made["parallel"]["data"][0]["dimensions"]}
    assert set(dims) == {"&lt;b&gt;depth&lt;/b&gt;", "kernel", "model", "&lt;i&gt;auc&lt;/i&gt;"}
    # Escaped once, so plotly (which turns &lt; &gt; &amp; back into characters) shows the text as typed.
    assert [html.unescape(t) for t in dims["kernel"]["ticktext"]] == sorted([link, "rbf"])
    assert [html.unescape(t) for t in dims["model"]["ticktext"]] == sorted(["<img src=x onerror=alert(1)>", "svm & co"])
    kernel = next(f for f in made["by_param"] if f["layout"]["xaxis"]["title"]["text"] == "kernel")
    assert kernel["layout"]["xaxis"]["type"] == "category"
    assert [html.unescape(x) for x in kernel["data"][0]["x"]] == [link, "rbf"]
    assert made["importance"]["data"][0]["name"] == "&lt;svg onload=alert(1)&gt;"
    assert made["drift"]["layout"]["title"]["text"] == "&lt;script&gt;f&lt;/script&gt;"
    # The offline HTML page too: its plot data holds no tag built from a param.
    page = dimensions(lb)
    assert not [s for s in _strings(page) if "<" in s]
