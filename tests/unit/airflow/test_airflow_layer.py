"""The Airflow layer's own pieces: trigger-form params from the spec model, DAG defaults, failures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlfleet.config import PROJECT_ROOT
from mlfleet.spec import ExperimentSpec, SpecError


def test_the_spec_param_requires_what_the_model_requires() -> None:
    from mlfleet.airflow.params import spec_param

    param = spec_param()
    required = [name for name, field in ExperimentSpec.model_fields.items() if field.is_required()]
    assert param.schema["required"] == required == ["name", "task", "target", "metric", "dataset", "models"]
    assert param.resolve() is None
    assert param.resolve("name: x\ntask: classification\n").startswith("name: x")
    assert param.resolve({"name": "x", "task": "classification", "target": "t", "metric": "accuracy",
                          "dataset": {"builtin": "iris"}, "models": []})["name"] == "x"


@pytest.mark.parametrize("value", [{"name": "x"}, "", 7, "specs/churn-baseline.yaml", "/etc/passwd",
                                   "name: x\n" + "#" * 1_000_000],
                         ids=["object without fields", "empty", "number", "spec file's path", "worker file's path",
                              "over a megabyte"])
def test_the_spec_param_refuses_what_can_never_be_a_spec(value) -> None:
    """A path is refused by the form itself (a spec's text has `key: value`); prepare refuses it again."""
    from airflow.sdk.definitions.param import ParamValidationError

    from mlfleet.airflow.params import spec_param

    with pytest.raises(ParamValidationError):
        spec_param().resolve(value)


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
    assert dag.default_args == {"owner": "ml-platform", "retries": 3, "retry_delay": timedelta(seconds=5),
                                "execution_timeout": timedelta(minutes=120)}  # MLFLEET_TASK_TIMEOUT_MINUTES


def test_task_timeouts_come_from_the_settings_when_the_dag_is_parsed(monkeypatch) -> None:
    from mlfleet.airflow.dag_defaults import batch_timeout, mlfleet_dag, task_timeout

    assert batch_timeout() == timedelta(minutes=1440 + 120)  # the longest batch any spec may ask for, and more
    monkeypatch.setenv("MLFLEET_TASK_TIMEOUT_MINUTES", "30")
    monkeypatch.setenv("MLFLEET_MAX_TIMEOUT_MINUTES", "600")
    assert task_timeout() == timedelta(minutes=30) and batch_timeout() == timedelta(minutes=630)

    @mlfleet_dag(dag_id="timeout_probe", doc_md="probe", schedule=None, tag="probe", execution_timeout=batch_timeout())
    def probe():
        pass

    assert probe().default_args["execution_timeout"] == timedelta(minutes=630)


def test_a_spec_error_fails_the_task_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.airflow.failures import fail_without_retry

    with pytest.raises(AirflowFailException, match=r"^invalid configuration: etl_backend: no application$"):
        with fail_without_retry("configuration"):
            raise SpecError("etl_backend", "no application")
    with pytest.raises(KeyError):  # anything else is left to Airflow's retries
        with fail_without_retry():
            raise KeyError("x")


@pytest.mark.parametrize("where", ["specs/iris-quick.yaml", "{project}/specs/iris-quick.yaml", "{tmp}/secret.yaml",
                                   "{tmp}/missing.yaml", "/etc/passwd", "~/.ssh/id_rsa"])
def test_a_path_in_the_spec_param_is_never_opened(tmp_path: Path, monkeypatch, where: str) -> None:
    """The conf's `spec` is the spec itself: a path, to a file that exists or not, is one line of text,
    refused the same way, so the answer says nothing of the worker's files and shows none of them."""
    from mlfleet.airflow.sweep_tasks import spec_data

    monkeypatch.chdir(PROJECT_ROOT)  # where the old code also looked
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    path = where.format(project=PROJECT_ROOT, tmp=tmp_path)
    with pytest.raises(SpecError) as caught:
        spec_data({"spec": path, "spec_file": "specs/iris-quick.yaml"})
    assert caught.value.field == "spec"
    assert caught.value.message == ("expected a mapping of spec fields, got one line of text; give the spec itself "
                                    "(YAML or JSON), or choose one of the project's spec files as spec_file")
    assert "password" not in str(caught.value) and "hunter2" not in str(caught.value)
