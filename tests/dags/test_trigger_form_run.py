"""experiment_sweep triggered as the form sends it: a spec file plus overrides, end to end; a bad
override, a path where a spec belongs, a spec_file outside specs/ or a spec over the deployment's
limits fails the first task, naming the field, before anything is written or read."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "manual__2026-11-23T00:00:00+00:00"
RANDOM = {"name": "iris-random", "task": "classification", "target": "target", "metric": "accuracy",
          "dataset": {"builtin": "iris"}, "search": {"strategy": "random", "n_trials": 4},
          "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.1, 10.0], "log": True}}}]}


@pytest.fixture(scope="module")
def experiment_sweep():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / "experiment_sweep.py")).dags["experiment_sweep"]


def test_spec_file_with_overrides_runs_end_to_end(airflow_db, settings, experiment_sweep) -> None:
    from airflow.utils.state import TaskInstanceState

    run = experiment_sweep.test(run_conf={"spec_file": "specs/iris-quick.yaml", "backend": "local",
                                          "max_parallel": 1, "timeout_minutes": 5})
    tis = run.get_task_instances()
    assert run.state == "success", {(ti.task_id, ti.map_index): ti.state for ti in tis}
    assert [ti.map_index for ti in tis if ti.task_id == "run_batch"] == [0]  # max_parallel 1: one batch
    assert all(ti.state == TaskInstanceState.SUCCESS for ti in tis)
    end = next(ti for ti in tis if ti.task_id == "end_round").xcom_pull(task_ids="end_round")
    assert end["n_trials"] == 5  # iris-quick's grid: 3 + 2 trials
    results = Path(end["results_uri"].removeprefix("file://"))
    assert results.parent.name == "iris-quick"
    spec = json.loads((results / "spec.json").read_text())  # the spec as swept: overrides applied
    assert spec["budget"] == {"max_parallel": 1, "timeout_minutes": 5} and spec["backend"] == "local"


def test_a_bad_override_fails_at_prepare_naming_the_field(airflow_db, settings, experiment_sweep) -> None:
    from airflow.utils.state import TaskInstanceState

    run = experiment_sweep.test(run_conf={"spec_file": "specs/iris-quick.yaml", "n_trials": 3})  # a grid spec
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["prepare"] == TaskInstanceState.FAILED  # failed, not up for retry
    assert states["run_batch"] != TaskInstanceState.SUCCESS and states["end_round"] != TaskInstanceState.SUCCESS
    assert not settings.experiments_dir.exists()


@pytest.mark.parametrize(("conf", "message"), [
    ({"spec_file": "specs/iris-quick.yaml", "n_trials": 3}, r"invalid spec: search\.n_trials: the n_trials override needs"),
    ({"spec": RANDOM, "n_trials": 0}, r"invalid spec: search\.n_trials: Input should be greater than or equal to 1"),
    ({"spec_file": "specs/iris-quick.yaml", "max_parallel": 0},
     r"invalid spec: budget\.max_parallel: Input should be greater than or equal to 1"),
    ({"spec_file": "specs/iris-quick.yaml", "backend": "gpu"}, r"invalid spec: backend: Input should be 'local'"),
    ({"spec": "specs/iris-quick.yaml"}, r"invalid spec: spec: expected a mapping of spec fields, got one line of text"),
    ({"spec": str(ROOT / "specs" / "iris-quick.yaml")}, r"invalid spec: spec: expected a mapping of spec fields"),
    ({"spec_file": "../../etc/passwd"}, r"invalid spec: spec_file: '\.\./\.\./etc/passwd' is not one of the project's"),
    ({"spec_file": "/etc/passwd"}, r"invalid spec: spec_file: '/etc/passwd' is not one of the project's spec files"),
    ({"spec": {**RANDOM, "models": [{"type": "logistic_l1", "params": {"C": list(range(300_000))}}]}},
     r"invalid spec: spec: larger than 1,000,000 bytes"),
    ({"spec": "x: " + "[" * 50_000}, r"invalid spec: spec: nested more than 20 levels deep"),
    ({"spec": RANDOM, "timeout_minutes": 1e9},
     r"invalid spec: budget\.timeout_minutes: 1e\+09 is above the deployment's limit 1440 \(MLFLEET_MAX_TIMEOUT_MINUTES\)"),
    ({"spec": {**RANDOM, "budget": {"timeout_minutes": float("inf")}}},
     r"invalid spec: budget\.timeout_minutes: inf is not a finite number"),
    ({"spec": {**RANDOM, "resources": {"cpu": 1e6}}}, r"invalid spec: resources\.cpu: 1e\+06 is above .*MLFLEET_MAX_CPU"),
    ({"spec": RANDOM, "max_parallel": 10_000}, r"invalid spec: budget\.max_parallel: 10000 is above .*MLFLEET_MAX_PARALLEL"),
], ids=["n_trials on a grid", "n_trials 0", "max_parallel 0", "backend", "a spec file's path as spec",
        "an absolute path as spec", "spec_file traversal", "spec_file absolute", "oversized object", "deep nesting",
        "timeout 1e9", "timeout inf", "cpu", "max_parallel"])
def test_prepare_names_the_field_of_a_bad_override(settings, conf, message) -> None:
    """The task itself, for values that reach it without the form (prepare runs on any params)."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.airflow import sweep_tasks

    with pytest.raises(AirflowFailException, match=message):
        sweep_tasks.prepare.function(params=conf, run_id=RUN_ID, ti=SimpleNamespace(dag_id="experiment_sweep"))
    assert not settings.experiments_dir.exists()


def test_the_form_refuses_a_bad_override_before_any_run(airflow_db, experiment_sweep) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="n_trials"):
        experiment_sweep.test(run_conf={"spec_file": "specs/iris-quick.yaml", "n_trials": 0})
