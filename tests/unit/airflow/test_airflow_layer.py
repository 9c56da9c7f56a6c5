"""The Airflow layer's own pieces: trigger-form params from the spec model, DAG defaults, failures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlfleet.config import PROJECT_ROOT
from mlfleet.spec import ExperimentSpec, SpecError


def test_the_spec_param_requires_what_the_model_requires() -> None:
    from mlfleet.airflow.params import spec_param

    param = spec_param("specs/churn-baseline.yaml")
    required = [name for name, field in ExperimentSpec.model_fields.items() if field.is_required()]
    assert param.schema["required"] == required == ["name", "task", "target", "metric", "dataset", "models"]
    assert param.resolve() == "specs/churn-baseline.yaml"
    assert param.resolve({"name": "x", "task": "classification", "target": "t", "metric": "accuracy",
                          "dataset": {"builtin": "iris"}, "models": []})["name"] == "x"


@pytest.mark.parametrize("value", [{"name": "x"}, "", 7])
def test_the_spec_param_refuses_what_can_never_be_a_spec(value) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    from mlfleet.airflow.params import spec_param

    with pytest.raises(ParamValidationError):
        spec_param("specs/churn-baseline.yaml").resolve(value)


def test_date_param() -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    from mlfleet.airflow.params import date_param

    assert date_param().resolve("2026-09-01") == "2026-09-01" and date_param().resolve(None) is None
    with pytest.raises(ParamValidationError):
        date_param().resolve("1 Sept")


def test_dags_get_the_shared_defaults() -> None:
    from mlfleet.airflow.dag_defaults import mlfleet_dag

    @mlfleet_dag(dag_id="defaults_probe", doc_md="probe", schedule=None, tag="probe", retries=3,
                 retry_delay=timedelta(seconds=5))
    def probe():
        pass

    dag = probe()
    assert dag.catchup is False and dag.max_active_runs == 1 and dag.tags == {"mlfleet", "probe"}
    assert dag.default_args == {"owner": "ml-platform", "retries": 3, "retry_delay": timedelta(seconds=5)}


def test_a_spec_error_fails_the_task_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.airflow.failures import fail_without_retry

    with pytest.raises(AirflowFailException, match=r"^invalid configuration: etl_backend: no application$"):
        with fail_without_retry("configuration"):
            raise SpecError("etl_backend", "no application")
    with pytest.raises(KeyError):  # anything else is left to Airflow's retries
        with fail_without_retry():
            raise KeyError("x")


def test_a_spec_path_is_also_tried_from_the_project_root(tmp_path: Path, monkeypatch) -> None:
    from mlfleet.airflow.sweep_tasks import resolve_spec_source

    monkeypatch.chdir(tmp_path)
    assert resolve_spec_source("specs/iris-quick.yaml") == str(PROJECT_ROOT / "specs/iris-quick.yaml")
    assert resolve_spec_source("specs/missing.yaml") == "specs/missing.yaml"  # prepare names it
    inline = {"name": "x"}
    assert resolve_spec_source(inline) is inline
    assert resolve_spec_source("name: x\ntask: classification\n").startswith("name: x")
