"""Who sees what in the results app: models only mlfleet registered, each version only to readers of
the DAG that made it, retrain decisions only to readers of `retrain`, and one answer (404) for a run
the user may not read and one that does not exist.

No real sweep: the sweeps are the two small files that decide who may read them (context.json,
airflow_run.json), and the registry holds versions made with MLflow's client, tagged as
`register_model` tags them, plus one model that someone else registered in the same store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi import Header, HTTPException
from fastapi.testclient import TestClient

from mlfleet.config import Settings
from mlfleet.results.registry import SCORE_TAG
from mlfleet.results.tracking import SWEEP_TAG, tracking_client
from mlfleet.sweep.ids import run_id_from_airflow
from mlfleet.sweep.rounds import continuation_run_id
from mlfleet.ui.app import Access, create_app

MODEL = "churn-x"
SWEEP_AIRFLOW_RUN = "manual__2026-01-01T00:00:00+00:00"
RETRAIN_AIRFLOW_RUN = "retrain__churn-x__v1__k3y"  # what drift_monitor's report 20260102T000000-k3y triggered
REPORT = "20260102T000000-k3y"
SWEEP, RETRAIN = run_id_from_airflow(SWEEP_AIRFLOW_RUN), run_id_from_airflow(RETRAIN_AIRFLOW_RUN)
GONE = run_id_from_airflow("retrain__churn-x__v2__old")  # a retrain whose results were removed
MISSING = run_id_from_airflow("manual__2026-01-03T00:00:00+00:00")  # no such sweep
READABLE = {
    "admin": {"experiment_sweep", "retrain", "drift_monitor"},
    "sweeps": {"experiment_sweep"},
    "retrainer": {"retrain"},
    "drift": {"drift_monitor"},
}


def _user(x_user: str | None = Header(default=None)) -> str:
    if not x_user:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return x_user


def _as(user: str) -> dict[str, str]:
    return {"X-User": user}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("access") / "home")
    experiments = settings.home_dir / "experiments" / MODEL
    spec = {"metric": "accuracy", "search": {"strategy": "grid"}}
    _write(experiments / SWEEP / "context.json", {"experiment": MODEL, "run_id": SWEEP, "spec": spec})
    _write(experiments / SWEEP / "airflow_run.json", {"dag_id": "experiment_sweep", "run_id": SWEEP_AIRFLOW_RUN})
    _write(experiments / RETRAIN / "context.json", {"experiment": MODEL, "run_id": RETRAIN, "spec": spec,
                                                    "retraining": {"champion": {"version": "1"}}})
    _write(experiments / RETRAIN / "airflow_run.json", {"dag_id": "retrain", "run_id": RETRAIN_AIRFLOW_RUN})

    client = tracking_client(settings)
    client.create_registered_model(MODEL)
    # v1 from the sweep; v2 from the retrain, promoted; v3 from a retrain whose results are gone.
    client.create_model_version(MODEL, source="s3://b/1", tags={SWEEP_TAG: SWEEP, SCORE_TAG: "0.8"})
    client.create_model_version(MODEL, source="s3://b/2", tags={SWEEP_TAG: RETRAIN, "mlfleet.decision": "promoted"})
    client.create_model_version(MODEL, source="s3://b/3", tags={SWEEP_TAG: GONE, "mlfleet.decision": "kept_champion"})
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.create_registered_model("foreign")  # registered by someone else: no mlfleet tag
    client.create_model_version("foreign", source="s3://elsewhere/model")
    client.set_registered_model_alias("foreign", "champion", "1")

    decision = {"model": MODEL, "champion_version": "1", "challenger_version": "2", "promoted": True,
                "challenger_score": 0.93, "champion_score": 0.81, "holdout_rows": 30}
    _write(settings.decisions_dir / MODEL / f"{run_id_from_airflow(RETRAIN_AIRFLOW_RUN)}.json", decision)
    # A decision naming the sweep's own version: shown to nobody who may not read `retrain`.
    _write(settings.decisions_dir / MODEL / "older.json", {**decision, "challenger_version": "1", "promoted": False,
                                                          "challenger_score": 0.77})
    _write(settings.drift_dir / MODEL / f"{REPORT}.json", {
        "model": MODEL, "drift": True, "champion_version": "1", "checked_at": "2026-01-02T00:00:00+00:00",
        "drifted_features": ["spend"], "thresholds": {"psi_threshold": 0.2, "ks_pvalue": 0.01, "ks_statistic": 0.1},
        "features": {"spend": {"psi": 0.5, "ks_statistic": 0.3, "ks_pvalue": 0.001, "drifted": True, "reason": "PSI"}}})
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> TestClient:
    access = Access(user=_user, readable_dags=lambda user: READABLE.get(user, set()), settings=lambda: settings)
    return TestClient(create_app(access))


def _model_rows(html: str) -> dict[str, str]:
    rows = re.findall(r'<tr class="model-row">(.*?)</tr>', html, flags=re.S)
    return {re.search(r">([^<]+)</a>", row)[1]: row for row in rows}


def _versions(html: str) -> list[str]:
    return re.findall(r'<tr class="version-row[^"]*">\s*<td>v(\d+)</td>', html)


def test_only_models_mlfleet_registered_are_shown(client: TestClient) -> None:
    assert list(_model_rows(client.get("/models", headers=_as("admin")).text)) == [MODEL]
    hidden = client.get("/models/foreign", headers=_as("admin"))
    missing = client.get("/models/no-such-model", headers=_as("admin"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("foreign", "NAME") == missing.text.replace("no-such-model", "NAME")


def test_a_model_version_shows_only_to_readers_of_the_dag_that_made_it(client: TestClient) -> None:
    assert _versions(client.get(f"/models/{MODEL}", headers=_as("admin")).text) == ["3", "2", "1"]
    # The sweep's reader sees the sweep's version, not the retrains' (nor the champion a retrain promoted).
    assert _versions(client.get(f"/models/{MODEL}", headers=_as("sweeps")).text) == ["1"]
    assert "v2" not in _model_rows(client.get("/models", headers=_as("sweeps")).text)[MODEL]
    assert "v2" in _model_rows(client.get("/models", headers=_as("admin")).text)[MODEL]
    # The retrains' reader sees theirs, the one whose results are gone included (its tags say retrain).
    assert _versions(client.get(f"/models/{MODEL}", headers=_as("retrainer")).text) == ["3", "2"]
    # A reader of neither DAG: no model, and the same 404 as a model that does not exist.
    assert _model_rows(client.get("/models", headers=_as("drift")).text) == {}
    hidden, missing = (client.get(f"/models/{name}", headers=_as("drift")) for name in (MODEL, "no-such-model"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace(MODEL, "NAME") == missing.text.replace("no-such-model", "NAME")


def test_the_experiments_list_shows_a_champion_only_to_who_may_see_its_version(client: TestClient) -> None:
    def champion_cell(user: str) -> str:
        html = client.get("/experiments", headers=_as(user)).text
        row = next(r for r in re.findall(r'<tr class="experiment-row">.*?</tr>', html, flags=re.S) if SWEEP in r)
        return re.findall(r'<td data-value="([^"]*)">', row)[-1]

    assert champion_cell("admin") == "2"
    assert champion_cell("sweeps") == ""  # v2 is the retrain's


def test_retrain_decisions_show_only_to_readers_of_retrain(client: TestClient) -> None:
    full = client.get(f"/drift/{MODEL}/{REPORT}", headers=_as("admin")).text
    assert RETRAIN_AIRFLOW_RUN in full and "promoted" in full
    drift_only = client.get(f"/drift/{MODEL}/{REPORT}", headers=_as("drift"))
    assert drift_only.status_code == 200 and "spend" in drift_only.text
    assert RETRAIN_AIRFLOW_RUN not in drift_only.text and "promoted" not in drift_only.text
    assert "Triggered retrain" not in drift_only.text
    assert "kept the champion" in client.get(f"/models/{MODEL}", headers=_as("admin")).text
    sweeps = client.get(f"/models/{MODEL}", headers=_as("sweeps")).text
    assert "kept the champion" not in sweeps and "promoted" not in sweeps


def test_the_run_tab_answers_a_sweep_the_user_may_not_read_as_one_that_does_not_exist(client: TestClient) -> None:
    for dag_id, run_id, sweep in [("experiment_sweep", SWEEP_AIRFLOW_RUN, SWEEP), ("retrain", RETRAIN_AIRFLOW_RUN, RETRAIN),
                                  ("retrain", continuation_run_id(MODEL, RETRAIN, 1), RETRAIN)]:
        tab = client.get(f"/runs/{dag_id}/{run_id}", headers=_as("admin"), follow_redirects=False)
        assert (tab.status_code, tab.headers.get("location")) == (307, f"/experiments/{MODEL}/{sweep}"), run_id

    def answer(user: str, dag_id: str, run_id: str, fake_run_id: str) -> tuple[int, str]:
        response = client.get(f"/runs/{dag_id}/{run_id}", headers=_as(user), follow_redirects=False)
        return response.status_code, response.text.replace(run_id, "RUN").replace(fake_run_id, "RUN")

    for user, dag_id, run_id in [
        # A continuation run id names its sweep: the retrain's, asked for under a DAG the user reads ...
        ("sweeps", "experiment_sweep", continuation_run_id(MODEL, RETRAIN, 1)),
        # ... or the sweep's, under the drift DAG.
        ("drift", "drift_monitor", continuation_run_id(MODEL, SWEEP, 1)),
        # A DAG the user may not read at all.
        ("sweeps", "retrain", RETRAIN_AIRFLOW_RUN),
    ]:
        fake = continuation_run_id(MODEL, MISSING, 1)
        forbidden = answer(user, dag_id, run_id, fake)
        missing = answer(user, dag_id, fake, fake)
        assert forbidden[0] == missing[0] == 404, (user, dag_id, run_id)
        assert forbidden[1] == missing[1]
