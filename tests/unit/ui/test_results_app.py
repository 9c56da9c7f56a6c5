"""The results app over real sweeps (run with `run_sweep`: real training, MLflow and Optuna), through
FastAPI's TestClient, with a stand-in for Airflow's auth manager: who is signed in comes from a
header, and which DAGs they may read from a table, the two things the app asks the auth manager.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from fastapi import Header, HTTPException
from fastapi.testclient import TestClient

from mlfleet.config import Settings
from mlfleet.drift.statistics import drift_report, write_drift_report
from mlfleet.sweep import SweepContext, prepare, propose, run_batch, run_id_from_airflow, run_sweep
from mlfleet.sweep.progress import record_airflow_run
from mlfleet.ui.app import Access, create_app

GRID = {  # C = -1 fails at fit time (scikit-learn refuses it): a failed trial with a real error
    "name": "iris-grid", "task": "classification", "target": "target", "metric": "accuracy",
    "dataset": {"builtin": "iris"}, "cv": {"folds": 3, "seed": 0},
    "models": [{"type": "logistic_l1", "params": {"C": [-1.0, 0.01, 1.0, 100.0]}}],
}
RANDOM = {**GRID, "name": "iris-random", "search": {"strategy": "random", "n_trials": 8},
          "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.001, 100.0], "log": True},
                                                         "tol": [0.0001, 0.01]}}]}
READABLE = {"admin": {"experiment_sweep", "retrain", "drift_monitor"}, "drift-only": {"drift_monitor"}}
ADMIN = {"X-User": "admin"}


def _user(x_user: str | None = Header(default=None)) -> str:
    if not x_user:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return x_user


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui") / "home"


@pytest.fixture(scope="module")
def settings(home: Path) -> Settings:
    return Settings(home=home, local_workers=2)


@pytest.fixture(scope="module")
def sweeps(settings: Settings) -> dict[str, dict]:
    grid = run_sweep(GRID, settings=settings)
    random = run_sweep(RANDOM, settings=settings)
    return {"grid": grid, "random": random}


@pytest.fixture(scope="module")
def client(settings: Settings, sweeps: dict) -> TestClient:
    access = Access(user=_user, readable_dags=lambda user: READABLE.get(user, set()), settings=lambda: settings)
    return TestClient(create_app(access))


def _run_url(board: dict) -> str:
    return f"/experiments/{board['experiment']}/{board['run_id']}"


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr class="trial[^"]*"[^>]*>.*?</tr>', html, flags=re.S)


def test_every_route_refuses_an_anonymous_request(client: TestClient, sweeps: dict) -> None:
    run = _run_url(sweeps["grid"])
    trial = sweeps["grid"]["best"]["trial_id"]
    for path in ["/", "/experiments", run, f"{run}/plots.json", f"{run}/progress.json", f"{run}/leaderboard.csv",
                 f"{run}/trials/{trial}", "/drift", "/models", "/models/iris-grid", "/static/app.js",
                 "/runs/experiment_sweep/manual__1"]:
        assert client.get(path).status_code == 401, path


def test_experiments_list_shows_each_sweep_with_progress_best_and_champion(client: TestClient, sweeps: dict) -> None:
    html = client.get("/experiments", headers=ADMIN).text
    rows = re.findall(r'<tr class="experiment-row">.*?</tr>', html, flags=re.S)
    assert len(rows) == 2
    grid = next(r for r in rows if "iris-grid" in r)
    assert "4 / 4" in grid and "(1 failed)" in grid and "finished" in grid
    assert f"{sweeps['grid']['best']['mean_score']:.4g}" in grid
    version = sweeps["grid"]["registered_model"]["version"]
    assert f">v{version}</a>" in grid  # the first version of a model is its champion


def test_leaderboard_is_best_first_marks_the_best_and_shows_the_failed_trial_error(client: TestClient,
                                                                                 sweeps: dict) -> None:
    board = sweeps["grid"]
    html = client.get(_run_url(board), headers=ADMIN).text
    rows = _rows(html)
    assert len(rows) == 4
    assert 'class="trial best"' in rows[0] and board["best"]["trial_id"] in rows[0]
    failed = [r for r in rows if 'data-status="failed"' in r]
    assert len(failed) == 1 and rows[-1] == failed[0]
    error = next(t["error"] for t in board["trials"] if t["status"] == "failed")
    assert "C" in error and _escaped(error) in failed[0]
    assert '<th data-sort="param-C">C</th>' in html
    assert 'data-live="0"' in html  # finished: the page does not poll


def _escaped(text: str) -> str:
    from markupsafe import escape  # what Jinja's autoescape writes

    return str(escape(text))


def test_downloads_are_the_leaderboard_contract(client: TestClient, sweeps: dict) -> None:
    board = sweeps["grid"]
    data = client.get(f"{_run_url(board)}/leaderboard.json", headers=ADMIN).json()
    assert data["best"] == board["best"] and data["n_trials"] == 4 and data["n_failed"] == 1
    table = list(csv.DictReader(io.StringIO(client.get(f"{_run_url(board)}/leaderboard.csv", headers=ADMIN).text)))
    assert [row["trial_id"] for row in table] == [t["trial_id"] for t in board["trials"]]
    assert client.get(f"{_run_url(board)}/leaderboard.xml", headers=ADMIN).status_code == 404


def test_plots_have_a_log_axis_history_and_importance_for_a_random_sweep(client: TestClient, sweeps: dict) -> None:
    plots = client.get(f"{_run_url(sweeps['random'])}/plots.json", headers=ADMIN).json()
    dims = {d["label"]: d for d in plots["parallel"]["data"][0]["dimensions"]}
    c_values = sorted(t["params"]["C"] for t in sweeps["random"]["trials"] if t["status"] == "success")
    assert "C" not in dims and sorted(dims["log10(C)"]["values"]) == pytest.approx([math.log10(c) for c in c_values])
    trials = [t for t in sweeps["random"]["trials"] if t["status"] == "success"]
    scores, best = plots["history"]["data"][0]["y"], plots["history"]["data"][1]["y"]
    assert len(scores) == len(trials) and best == [max(scores[: i + 1]) for i in range(len(scores))]
    assert {p["name"] for p in plots["by_param"]} == {"C", "tol"}
    by_c = next(p for p in plots["by_param"] if p["name"] == "C")["figure"]
    assert by_c["layout"]["xaxis"]["type"] == "log"
    importance = plots["importance"]["data"][0]
    assert importance["name"] == "logistic_l1" and sorted(importance["y"]) == ["C", "tol"]
    assert abs(sum(importance["x"]) - 1.0) < 1e-6
    grid = client.get(f"{_run_url(sweeps['grid'])}/plots.json", headers=ADMIN).json()
    assert grid["importance"] is None and grid["parallel"] is not None


def test_trial_page_has_folds_prediction_error_log_and_no_airflow_link_for_a_cli_sweep(client: TestClient,
                                                                                       sweeps: dict) -> None:
    board = sweeps["grid"]
    failed = next(t for t in board["trials"] if t["status"] == "failed")
    html = client.get(f"{_run_url(board)}/trials/{failed['trial_id']}", headers=ADMIN).text
    assert 'id="trial-error"' in html and _escaped(failed["error"]) in html
    assert "not run by Airflow" in html
    best = board["best"]["trial_id"]
    html = client.get(f"{_run_url(board)}/trials/{best}", headers=ADMIN).text
    folds = re.findall(r"<tr><td>(\d)</td><td>([0-9.]+)</td>", html)
    assert [f[0] for f in folds] == ["1", "2", "3"]
    assert "predicted seconds" in html and best in html
    assert re.search(r"<code>[0-9a-f]{32}</code>", html)  # its MLflow run, found by its tags
    assert client.get(f"{_run_url(board)}/trials/nope-00000000", headers=ADMIN).status_code == 404


def test_names_from_the_url_never_leave_the_results_root(client: TestClient, sweeps: dict, settings: Settings) -> None:
    outside = settings.home_dir.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "context.json").write_text("{}")
    run = _run_url(sweeps["grid"])
    for path in ["/experiments/..%2F..%2Foutside/x", "/experiments/iris-grid/%2E%2E",
                 f"{run}/trials/..%2F..%2Fcontext", "/drift/..%2F..%2Fexperiments/x", "/drift/m/%2E%2E",
                 "/models/..%2Fx", "/static/..%2Fapp.py", "/experiments/%3Cscript%3E/x"]:
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 404, path
        assert "<script>" not in response.text


def test_a_user_who_cannot_read_the_dags_sees_none_of_their_runs(client: TestClient, sweeps: dict) -> None:
    who = {"X-User": "drift-only"}
    assert "experiment-row" not in client.get("/experiments", headers=who).text
    run = _run_url(sweeps["grid"])
    for path in [run, f"{run}/leaderboard.json", f"{run}/plots.json", "/models/iris-grid"]:
        assert client.get(path, headers=who).status_code == 404, path
    assert "model-row" not in client.get("/models", headers=who).text
    assert client.get("/experiments", headers={"X-User": "stranger"}).status_code == 200


def test_spec_and_error_text_is_escaped(client: TestClient, sweeps: dict, settings: Settings) -> None:
    """A result row carries text from outside (errors, params): it is shown, never run."""
    source = Path(sweeps["grid"]["results_uri"].removeprefix("file://"))
    copy = source.parent / "20990101T000000-beef"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.parquet"))
    context = json.loads((copy / "context.json").read_text())
    (copy / "context.json").write_text(json.dumps({**context, "run_id": copy.name, "results_dir": str(copy)}))
    board = json.loads((copy / "leaderboard.json").read_text())
    board["trials"][-1]["error"] = "<script>alert('x')</script>"
    board["trials"][0]["params"] = {"C": "<img src=x onerror=alert(1)>"}
    (copy / "leaderboard.json").write_text(json.dumps(board))
    html = client.get(f"/experiments/iris-grid/{copy.name}", headers=ADMIN).text
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    shutil.rmtree(copy)


def test_a_running_sweep_shows_pending_trials_and_live_progress(client: TestClient, settings: Settings) -> None:
    spec = {**GRID, "name": "iris-live", "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}]}
    airflow_run = "manual__2026-12-01T12:00:00+00:00"
    context = prepare(spec, settings=settings, run_id=run_id_from_airflow(airflow_run))  # as the DAG's prepare does
    record_airflow_run(context.results_path, dag_id="experiment_sweep", run_id=airflow_run)
    batches = propose(context, round_index=0, settings=settings)
    url = f"/experiments/iris-live/{context.run_id}"
    before = client.get(f"{url}/progress.json", headers=ADMIN).json()
    assert before == {"state": "running", "trials_done": 0, "trials_total": 2, "best": None}
    html = client.get(url, headers=ADMIN).text
    assert len(re.findall(r'data-status="pending"', html)) == 2 and 'data-live="1"' in html
    run_batch(SweepContext.load(context.ref()), batches[0], settings=settings)
    after = client.get(f"{url}/progress.json", headers=ADMIN).json()
    assert after["state"] == "running" and after["trials_done"] == 2 and after["best"]["mean_score"] > 0.5
    live = client.get(f"{url}?fragment=live", headers=ADMIN).text
    assert live.startswith('<div id="live">') and "<html" not in live
    # The DAG-run tab of the Airflow run that started it leads here.
    tab = client.get(f"/runs/experiment_sweep/{airflow_run}", headers=ADMIN,
                     follow_redirects=False)
    assert tab.status_code == 307 and tab.headers["location"] == url
    assert "no sweep results" in client.get("/runs/feature_pipeline/scheduled__x", headers=ADMIN).text


def test_the_run_header_says_when_the_space_holds_fewer_trials_than_asked(client: TestClient, sweeps: dict,
                                                                         settings: Settings) -> None:
    spec = {**GRID, "name": "iris-small-space", "search": {"strategy": "random", "n_trials": 20},
            "models": [{"type": "logistic_l1", "params": {"C": [0.01, 0.1, 1.0, 10.0]}}]}
    context = prepare(spec, settings=settings)
    html = client.get(f"/experiments/iris-small-space/{context.run_id}", headers=ADMIN).text
    header = html.split('<p class="downloads">')[0]
    assert ('<p class="meta" id="space-notice">Note: the space holds 4 distinct configurations; '
            'running 4 of the 20 asked.</p>') in header
    for board in sweeps.values():  # the random sweep's range holds its 8 trials: nothing to say
        assert 'id="space-notice"' not in client.get(_run_url(board), headers=ADMIN).text


def test_continuation_runs_lead_to_the_sweep_they_continue(client: TestClient, sweeps: dict, settings: Settings) -> None:
    from mlfleet.sweep.tokens import round_run_id

    board = sweeps["grid"]
    folder = settings.experiments_dir / board["experiment"] / board["run_id"]
    own = round_run_id(folder, experiment=board["experiment"], run_id=board["run_id"], round_index=3)
    tab = client.get(f"/runs/experiment_sweep/{own}", headers=ADMIN, follow_redirects=False)
    assert tab.status_code == 307 and tab.headers["location"] == _run_url(board)
    # A run id with the sweep's name but not its tag (anyone may trigger one) is not one of its runs.
    for made_up in (f"{board['experiment']}__{board['run_id']}__round_0003", own[:-1] + ("0" if own[-1] != "0" else "1")):
        assert client.get(f"/runs/experiment_sweep/{made_up}", headers=ADMIN, follow_redirects=False).status_code == 404


def test_drift_report_page_draws_both_windows_and_links_the_retrain(client: TestClient, settings: Settings) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"spend": rng.normal(0, 1, 500), "visits": rng.poisson(3, 500)})
    current = pd.DataFrame({"spend": rng.normal(1.5, 1, 500), "visits": rng.poisson(3, 500)})
    report = drift_report(reference=reference, current=current, features=["spend", "visits"], psi_threshold=0.2,
                          ks_pvalue=0.01, ks_statistic=0.1)
    report.update(model="iris-grid", champion_version="1", window_days=7, checked_at="2026-12-01T00:00:00+00:00")
    write_drift_report(report, settings.drift_dir / "iris-grid" / "20261201T000000-k3y.json")
    listing = client.get("/drift", headers=ADMIN).text
    assert listing.count('class="drift-row"') == 1 and "spend" in listing
    html = client.get("/drift/iris-grid/20261201T000000-k3y", headers=ADMIN).text
    figures = [json.loads(_unescape(f)) for f in re.findall(r'data-figure="([^"]+)"', html)]
    assert [f["layout"]["title"]["text"] for f in figures] == ["spend", "visits"]
    assert [d["name"] for d in figures[0]["data"]] == ["reference", "current"]
    assert abs(sum(figures[0]["data"][0]["y"]) - 1) < 1e-9
    assert "retrain__iris-grid__v1__k3y" in html and "no decision yet" in html
    assert "drift-row" not in client.get("/drift", headers={"X-User": "stranger"}).text


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_model_history_lists_versions_with_aliases_and_decisions(client: TestClient, sweeps: dict,
                                                                 settings: Settings) -> None:
    version = sweeps["grid"]["registered_model"]["version"]
    decision = {"model": "iris-grid", "challenger_version": "7", "champion_version": version, "promoted": False,
                "challenger_score": 0.5, "champion_score": 0.9, "holdout_rows": 30}
    (settings.decisions_dir / "iris-grid").mkdir(parents=True, exist_ok=True)
    (settings.decisions_dir / "iris-grid" / "x.json").write_text(json.dumps(decision))
    html = client.get("/models/iris-grid", headers=ADMIN).text
    rows = re.findall(r'<tr class="version-row[^"]*">.*?</tr>', html, flags=re.S)
    assert len(rows) == 1 and f"v{version}" in rows[0] and '<span class="badge">champion</span>' in rows[0]
    assert sweeps["grid"]["run_id"] in rows[0]
    assert client.get("/models/no-such-model", headers=ADMIN).status_code == 404
    listing = client.get("/models", headers=ADMIN).text
    assert listing.count('class="model-row"') == 2
