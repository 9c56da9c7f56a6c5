"""The read side of a sweep: which sweep an Airflow run belongs to, and the experiments list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlfleet.sweep.ids import run_id_from_airflow
from mlfleet.sweep.progress import NotFound, find_airflow_run, record_airflow_run, run_path
from mlfleet.sweep.rounds import continuation_run_id


def _sweep(root: Path, experiment: str, run_id: str) -> Path:
    path = root / experiment / run_id
    path.mkdir(parents=True)
    (path / "context.json").write_text("{}")
    return path


@pytest.mark.parametrize("airflow_run", [
    "manual__2026-12-01T12:00:00.123456+00:00",  # a manual experiment_sweep run
    "retrain__churn-baseline__v1__fc06a878ad",  # drift_monitor's retrain: its sweep id has no full stamp
    "scheduled__2026-12-01T00:00:00+00:00",
])
def test_round_zero_and_every_continuation_round_lead_to_the_sweep(tmp_path: Path, airflow_run: str) -> None:
    sweep_run = run_id_from_airflow(airflow_run)
    path = _sweep(tmp_path, "churn-baseline", sweep_run)
    record_airflow_run(path, dag_id="retrain", run_id=airflow_run)
    assert find_airflow_run(tmp_path, "retrain", airflow_run) == path.resolve()
    for round_index in (1, 9, 120):
        continuation = continuation_run_id("churn-baseline", sweep_run, round_index)
        assert find_airflow_run(tmp_path, "retrain", continuation) == path.resolve()
    assert find_airflow_run(tmp_path, "experiment_sweep", airflow_run) is None  # another DAG's run of that id


def test_a_sweep_with_a_token_is_found_only_under_its_tagged_round_run_ids(tmp_path: Path) -> None:
    from mlfleet.sweep.tokens import round_run_id, write_token

    path = _sweep(tmp_path, "churn-baseline", "20261201T120000-00000000000000ab")
    write_token(path)
    own = round_run_id(path, experiment="churn-baseline", run_id="20261201T120000-00000000000000ab", round_index=2)
    assert own.startswith("churn-baseline__20261201T120000-00000000000000ab__round_0002__")
    assert find_airflow_run(tmp_path, "experiment_sweep", own) == path.resolve()
    untagged = continuation_run_id("churn-baseline", "20261201T120000-00000000000000ab", 2)
    wrong_tag = f"{untagged}__{'0' * 16}" if not own.endswith("0" * 16) else f"{untagged}__{'1' * 16}"
    other_round = round_run_id(path, experiment="churn-baseline", run_id="20261201T120000-00000000000000ab",
                               round_index=3).replace("round_0003", "round_0002")
    for made_up in (untagged, wrong_tag, other_round):
        assert find_airflow_run(tmp_path, "experiment_sweep", made_up) is None, made_up


def test_run_path_refuses_what_is_not_a_sweep_inside_the_root(tmp_path: Path) -> None:
    _sweep(tmp_path, "exp", "20261201T000000-abcd")
    assert run_path(tmp_path, "exp", "20261201T000000-abcd").name == "20261201T000000-abcd"
    for experiment, run in [("exp", "missing"), ("..", "exp"), ("exp/../..", "x"), ("exp", ".."), ("", "x")]:
        with pytest.raises(NotFound):
            run_path(tmp_path, experiment, run)


def _finished(root: Path, run_id: str, best: float) -> Path:
    path = _sweep(root, "iris", run_id)
    board = {"trials": [{"trial_id": "t1", "status": "success", "mean_score": best}],
             "best": {"trial_id": "t1", "mean_score": best}}
    (path / "leaderboard.json").write_text(json.dumps(board))
    return path


def test_the_experiments_list_reads_a_finished_sweep_again_only_once_its_files_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfleet.sweep import progress

    done = _finished(tmp_path, "20261201T120000-aaaa", best=0.8)
    running = _sweep(tmp_path, "iris", "20261201T130000-bbbb")
    assert {s.run_id: s.state for s in progress.list_sweeps(tmp_path)} == {done.name: "finished", running.name: "running"}

    read: list[str] = []
    real = progress.summary
    monkeypatch.setattr(progress, "summary", lambda path, *a, **k: read.append(path.name) or real(path, *a, **k))
    progress.list_sweeps(tmp_path)
    assert read == [running.name]  # the finished one came from the cache, the running one was read

    board = json.loads((done / "leaderboard.json").read_text())
    board["best"]["mean_score"] = 0.9
    (done / "leaderboard.json").write_text(json.dumps(board) + " ")  # rewritten: a new size and mtime
    heads = {s.run_id: s for s in progress.list_sweeps(tmp_path)}
    assert heads[done.name].best["mean_score"] == 0.9
    (done / "decision.json").write_text(json.dumps({"promoted": True}))
    assert {s.run_id: s.decision for s in progress.list_sweeps(tmp_path)}[done.name] == {"promoted": True}
