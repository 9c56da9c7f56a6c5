"""The trigger forms: each DAG's params survive Airflow's serialization and are checked by Airflow's
own validation, on the scheduler's side (a run is created) and the task's side (params resolved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlfleet.config import PROJECT_ROOT
from mlfleet.spec import ExperimentSpec, SpecError

ROOT = Path(__file__).resolve().parents[3]
SPEC_OBJECT = {"name": "x", "task": "classification", "target": "target", "metric": "accuracy",
               "dataset": {"builtin": "iris"}, "models": [{"type": "logistic_l1", "params": {"C": [1.0]}}]}


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    found = {}
    for name in ("experiment_sweep", "retrain", "feature_pipeline"):
        bag = DagBag(dag_folder=str(ROOT / "dags" / f"{name}.py"))
        assert bag.import_errors == {}
        found[name] = bag.dags[name]
    return found


def scheduler_side(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """What creating a run does with its conf (`SerializedDAG.create_dagrun`), after a JSON round trip of the DAG."""
    import json

    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    return serialized.params.deep_merge(conf).validate()


def task_side(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """What the task runner does: the DAG's ParamsDict updated with the run's conf, then validated
    (on a copy: update() sets the value of the DAG's own Param objects)."""
    import copy

    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(copy.deepcopy(dag.params))
    params.update(conf)
    return params.validate()


def accepted(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    resolved = scheduler_side(dag, conf)
    assert task_side(dag, conf) == resolved
    return resolved


def refused(dag: Any, conf: dict[str, Any]) -> str:
    from airflow.sdk.definitions.param import ParamValidationError as TaskError

    from airflow.exceptions import ParamValidationError as SchedulerError

    with pytest.raises(SchedulerError) as scheduler:
        scheduler_side(dag, conf)
    with pytest.raises(TaskError):
        task_side(dag, conf)
    return str(scheduler.value)


# --- experiment_sweep ----------------------------------------------------------------------------


def test_the_sweep_form_fields(dags) -> None:
    params = dags["experiment_sweep"].params
    assert list(params) == ["spec_file", "spec", "backend", "n_trials", "max_parallel", "timeout_minutes"]
    schema = {name: params.get_param(name).schema for name in params}
    assert schema["spec_file"]["type"] == "string" and "enum" in schema["spec_file"]
    assert schema["spec"]["type"] == ["null", "string", "object"] and schema["spec"]["format"] == "multiline"
    assert schema["backend"]["enum"] == [None, "local", "sagemaker", "kubernetes"]
    assert set(schema["backend"]["values_display"]) == set(schema["backend"]["enum"])
    assert schema["n_trials"] == {**schema["n_trials"], "type": ["null", "integer"], "minimum": 1}
    assert schema["max_parallel"] == {**schema["max_parallel"], "type": ["null", "integer"], "minimum": 1}
    assert schema["timeout_minutes"] == {**schema["timeout_minutes"], "type": ["null", "number"], "exclusiveMinimum": 0}
    assert all(params.get_param(name).description for name in params)


def test_override_bounds_and_descriptions_are_the_spec_models(dags) -> None:
    params = dags["experiment_sweep"].params
    model = ExperimentSpec.model_json_schema()
    fields = {"n_trials": model["$defs"]["Search"]["properties"]["n_trials"],
              "max_parallel": model["$defs"]["Budget"]["properties"]["max_parallel"],
              "timeout_minutes": model["$defs"]["Budget"]["properties"]["timeout_minutes"],
              "backend": model["properties"]["backend"]}
    for name, field in fields.items():
        members = [m for m in field.get("anyOf", [field]) if m.get("type") != "null"]
        schema = params.get_param(name).schema
        for key in ("minimum", "exclusiveMinimum", "maximum"):
            assert schema.get(key) == members[0].get(key), (name, key)
        assert set(schema.get("enum", [])) - {None} == set(members[0].get("enum", [])), name
        assert field["description"] in params.get_param(name).description


def test_spec_file_lists_exactly_the_spec_files(dags) -> None:
    from mlfleet.airflow.params import DEFAULT_SPEC_FILE, spec_files

    on_disk = sorted(f"specs/{p.name}" for p in (PROJECT_ROOT / "specs").iterdir() if p.suffix == ".yaml")
    param = dags["experiment_sweep"].params.get_param("spec_file")
    assert spec_files() == param.schema["enum"] == on_disk
    assert {"specs/churn-baseline.yaml", "specs/iris-quick.yaml"} <= set(on_disk)
    assert param.value == DEFAULT_SPEC_FILE
    labels = param.schema["values_display"]
    assert labels["specs/iris-quick.yaml"] == "iris-quick: A one-minute sweep on a dataset shipped with scikit-learn."
    assert set(labels) == set(on_disk)


@pytest.mark.parametrize("conf", [
    {},
    {"spec_file": "specs/iris-quick.yaml", "n_trials": None, "backend": "local", "max_parallel": 2,
     "timeout_minutes": 0.5},
    {"spec_file": "specs/iris-quick.yaml", "n_trials": 12},
    {"spec": SPEC_OBJECT},  # a spec as an object (REST, CLI)
    {"spec": "name: x\ntask: classification\n"},  # or text pasted in the form
    {"spec": '{"name": "x", "task": "classification"}'},  # or JSON text
    {"sweep": {"experiment": "x", "run_id": "r", "results_dir": "/tmp/x"}, "round": 2},  # a bayes continuation
], ids=["defaults", "overrides", "n_trials", "spec object", "spec text", "spec json", "continuation"])
def test_the_sweep_form_accepts(dags, conf) -> None:
    resolved = accepted(dags["experiment_sweep"], conf)
    assert {k: resolved[k] for k in conf} == conf
    assert resolved["spec_file"] == conf.get("spec_file", "specs/churn-baseline.yaml")


DEEP: dict = {}
for _ in range(30):
    DEEP = {"a": DEEP}


@pytest.mark.parametrize(("conf", "param"), [
    ({"n_trials": 0}, "n_trials"),
    ({"n_trials": "5"}, "n_trials"),
    ({"n_trials": 2.5}, "n_trials"),
    ({"max_parallel": 0}, "max_parallel"),
    ({"timeout_minutes": 0}, "timeout_minutes"),
    ({"timeout_minutes": "soon"}, "timeout_minutes"),
    ({"backend": "gpu"}, "backend"),
    ({"spec_file": "specs/missing.yaml"}, "spec_file"),
    ({"spec_file": "../../etc/passwd"}, "spec_file"),
    ({"spec_file": "/etc/passwd"}, "spec_file"),
    ({"spec_file": "specs/../../../etc/passwd"}, "spec_file"),
    ({"spec_file": None}, "spec_file"),
    ({"spec": "specs/iris-quick.yaml"}, "spec"),  # a path is not a spec: spec_file names the project's files
    ({"spec": "/etc/passwd"}, "spec"),
    ({"spec": ""}, "spec"),
    ({"spec": 7}, "spec"),
    ({"spec": {"name": "x"}}, "spec"),
    ({"spec": {**SPEC_OBJECT, "notes": DEEP}}, "spec"),  # nested past the limit: refused at trigger
], ids=lambda v: str(v)[:80])
def test_the_sweep_form_refuses(dags, conf, param) -> None:
    assert f"Invalid input for param {param}:" in refused(dags["experiment_sweep"], conf)


def test_the_demo_loop_confs_pass_the_forms(dags) -> None:
    """`mlfleet demo` triggers the sweep with a conf the form must accept (a path in `spec` is refused)."""
    from mlfleet.demo.loop import DEMO_SPEC, sweep_conf

    assert accepted(dags["experiment_sweep"], sweep_conf())["spec_file"] == DEMO_SPEC


def test_what_a_run_sweeps(tmp_path: Path, monkeypatch) -> None:
    from mlfleet.airflow.sweep_tasks import spec_data
    from mlfleet.spec import load_spec_file

    monkeypatch.chdir(tmp_path)
    iris = load_spec_file(PROJECT_ROOT / "specs/iris-quick.yaml")
    assert spec_data({"spec_file": "specs/iris-quick.yaml", "spec": None}) == iris
    assert spec_data({"spec_file": "specs/iris-quick.yaml", "spec": SPEC_OBJECT}) is SPEC_OBJECT  # a pasted spec wins
    assert spec_data({"spec_file": "specs/iris-quick.yaml", "spec": "name: x\ntask: regression\n"}) == {
        "name": "x", "task": "regression"}
    assert spec_data({"spec_file": "specs/iris-quick.yaml", "spec": " \n"}) == iris  # blank: the spec file
    with pytest.raises(SpecError, match="^spec: no spec given"):
        spec_data({})


@pytest.mark.parametrize("spec_file", ["../../etc/passwd", "/etc/passwd", "specs/../../../etc/passwd",
                                       "specs/../pyproject.toml", "specs/missing.yaml", "specs", "specs/", 7])
def test_prepare_takes_only_a_project_spec_file(spec_file) -> None:
    """What reaches the task without the form (REST conf is validated by the same schema, but prepare
    runs on any params) is checked again against the same list, and no other file is opened."""
    from mlfleet.airflow.params import spec_files
    from mlfleet.airflow.sweep_tasks import spec_data

    with pytest.raises(SpecError) as caught:
        spec_data({"spec_file": spec_file})
    assert caught.value.field == "spec_file"
    assert caught.value.message.endswith(f"is not one of the project's spec files; choose one of "
                                         f"{', '.join(spec_files())}")


# --- retrain and feature_pipeline ----------------------------------------------------------------


def test_retrain_form(dags) -> None:
    dag = dags["retrain"]
    drift = {"model": "churn-baseline", "drifted_features": ["tenure", "spend"], "drift_report": "/r/1.json",
             "champion_version": "3"}  # what drift_monitor sends
    assert accepted(dag, drift) == drift
    assert accepted(dag, {"drifted_features": None})["model"] == "churn-baseline"
    assert accepted(dag, {"sweep": {"experiment": "x"}, "round": 1})["drifted_features"] == []
    for conf in ({"model": ""}, {"model": "Churn Baseline"}, {"model": "x" * 49}, {"drifted_features": "tenure"},
                 {"drifted_features": [1]}, {"drifted_features": ["a", "a"]}, {"drift_report": 5}):
        assert f"Invalid input for param {next(iter(conf))}:" in refused(dag, conf)
    assert all(dag.params.get_param(name).description for name in dag.params)


def test_feature_pipeline_form(dags) -> None:
    dag = dags["feature_pipeline"]
    assert {dag.params.get_param(n).schema["format"] for n in ("start", "end")} == {"date"}
    assert accepted(dag, {}) == {"start": None, "end": None}
    assert accepted(dag, {"start": "2026-09-01", "end": "2026-09-03"}) == {"start": "2026-09-01", "end": "2026-09-03"}
    for value in ("1 Sept", "2026-13-45", "2026-09-01T00:00", 20260901):
        assert "Invalid input for param start:" in refused(dag, {"start": value})
