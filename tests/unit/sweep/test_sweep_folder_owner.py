"""A sweep folder belongs to the run that started it: prepare refuses to share it with another run,
and a retry of the same run lands in it again (mlfleet.sweep.prepare.check_folder_owner)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlfleet.sweep import prepare
from mlfleet.sweep.context import AirflowRun
from mlfleet.sweep.continuation import TOKEN_FILE
from mlfleet.sweep.prepare import SweepFolderTaken, started_by

SPEC = {"name": "iris-owned", "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
        "models": [{"type": "logistic_l1", "params": {"C": [1.0]}}]}
RUN_ID = "20261123T100000-e1ef"  # what both Airflow runs below mapped to before ids kept 64 bits
A = AirflowRun(dag_id="experiment_sweep", run_id="manual__2026-11-23T10:00:00.000064+00:00")
B = AirflowRun(dag_id="experiment_sweep", run_id="manual__2026-11-23T10:00:00.000169+00:00")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_retry_of_the_same_run_is_idempotent(settings) -> None:
    first = prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=A)
    token = (first.results_path / TOKEN_FILE).read_text()
    again = prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=A)
    assert again == first and again.airflow_run == A
    assert (first.results_path / TOKEN_FILE).read_text() == token


@pytest.mark.parametrize("second,theirs,ours", [
    (B, f"Airflow run {A}", f"Airflow run {B}"),
    (AirflowRun(dag_id="retrain", run_id=A.run_id), f"Airflow run {A}", f"Airflow run retrain/{A.run_id}"),
    (None, f"Airflow run {A}", "a caller that is not an Airflow run"),
])
def test_a_folder_another_run_started_is_refused_naming_both(settings, second, theirs: str, ours: str) -> None:
    first = prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=A)
    before = files(settings.experiments_dir)
    with pytest.raises(SweepFolderTaken) as caught:
        prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=second)
    assert str(caught.value).startswith(f"sweep folder {first.results_dir} belongs to {theirs}; this prepare is {ours}.")
    assert files(settings.experiments_dir) == before  # nothing written into the other run's folder


def test_an_attempt_killed_right_after_taking_the_folder_keeps_it(settings) -> None:
    from mlfleet.storage import write_json_once
    from mlfleet.sweep.progress import AIRFLOW_RUN_FILE

    folder = settings.experiments_dir / SPEC["name"] / RUN_ID
    assert write_json_once(folder / AIRFLOW_RUN_FILE, A.model_dump())  # all the first attempt wrote
    with pytest.raises(SweepFolderTaken, match=re.escape(f"belongs to Airflow run {A}")):
        prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=B)
    assert prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=A).airflow_run == A


def test_a_sweep_no_airflow_run_started_is_not_taken_over(settings) -> None:
    prepare(SPEC, settings=settings, run_id=RUN_ID)  # `mlfleet sweep`, or a direct call
    assert prepare(SPEC, settings=settings, run_id=RUN_ID).airflow_run is None  # its own retry
    with pytest.raises(SweepFolderTaken, match="belongs to a sweep that no Airflow run started"):
        prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=A)


def test_started_by_reaches_prepare_through_a_wrapper(settings) -> None:
    with started_by(A):
        assert prepare(SPEC, settings=settings, run_id=RUN_ID).airflow_run == A
    assert prepare(SPEC, settings=settings, run_id="20261123T100000-0000").airflow_run is None


def test_a_folder_whose_owner_cannot_be_read_is_refused(settings) -> None:
    from mlfleet.sweep.progress import AIRFLOW_RUN_FILE

    folder = settings.experiments_dir / SPEC["name"] / RUN_ID
    folder.mkdir(parents=True)
    (folder / AIRFLOW_RUN_FILE).write_text("{not json")
    with pytest.raises(SweepFolderTaken, match=f"belongs to a sweep with an unreadable {AIRFLOW_RUN_FILE}"):
        prepare(SPEC, settings=settings, run_id=RUN_ID, airflow_run=A)
