"""A DAG run triggered with a bad `spec` fails at its first task, before any mapped trial starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD_SPEC = {
    "name": "bad-run",
    "task": "classification",
    "target": "target",
    "metric": "accuracy",
    "dataset": {"builtin": "iris"},
    "models": [{"type": "random_forest", "params": {"max_dept": [3]}}],
}


def test_prepare_task_raises_the_spec_message(settings) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.airflow import sweep_tasks

    with pytest.raises(AirflowFailException, match=r"invalid spec: models\[0\]\.params\.max_dept: unknown parameter"):
        sweep_tasks.prepare.function(params={"spec": BAD_SPEC}, run_id="manual__2026-11-23T00:00:00+00:00",
                                     ti=SimpleNamespace(dag_id="experiment_sweep"))
    assert not settings.experiments_dir.exists()


def test_bad_spec_run_fails_first_task_and_runs_no_trial(airflow_db, settings) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import TaskInstanceState

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["experiment_sweep"]
    run = dag.test(run_conf={"spec": BAD_SPEC})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["prepare"] == TaskInstanceState.FAILED
    assert states["run_batch"] != TaskInstanceState.SUCCESS and states["end_round"] != TaskInstanceState.SUCCESS
    assert not settings.experiments_dir.exists()
