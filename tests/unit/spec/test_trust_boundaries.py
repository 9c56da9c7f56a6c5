"""What a user who can trigger a DAG may not do with a spec: read the worker's files, crash the
parser, or buy more than the deployment allows. Every attack here is refused with a SpecError that
names the field; none reads a file, and none echoes one.

The DAG's own door (prepare, the trigger form) is tested in tests/unit/airflow and tests/dags.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mlfleet.config import PROJECT_ROOT, Limits
from mlfleet.spec import (
    ExperimentSpec,
    SpecError,
    apply_overrides,
    load_project_spec,
    load_spec,
    load_spec_file,
    load_spec_object,
    load_spec_param,
    load_spec_text,
    parse_spec,
)
from mlfleet.spec.loading import MAX_SPEC_BYTES, MAX_SPEC_DEPTH, project_spec_files

VALID: dict[str, Any] = {
    "name": "bounded", "task": "classification", "target": "target", "metric": "accuracy",
    "dataset": {"builtin": "iris"}, "cv": {"folds": 3, "seed": 0},
    "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}],
}
BAYES: dict[str, Any] = {**VALID, "search": {"strategy": "bayes", "n_trials": 40, "batch_size": 4},
                         "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.01, 10.0], "log": True}}}]}
TOO_DEEP = f"nested more than {MAX_SPEC_DEPTH} levels deep"
TOO_LARGE = f"larger than {MAX_SPEC_BYTES:,} bytes"


def refused(call: Any, *args: Any, **kwargs: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- the spec param is a spec, never a path ------------------------------------------------------


@pytest.fixture
def spec_on_disk(tmp_path: Path) -> Path:
    """A valid spec file the worker can read: what the old `spec` param would have opened."""
    path = tmp_path / "valid.yaml"
    path.write_text(json.dumps(VALID))
    return path


def test_a_path_in_the_spec_param_is_text_not_a_file(spec_on_disk: Path, monkeypatch) -> None:
    opened: list[str] = []
    real_open = Path.open

    def watch(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", watch)
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(str(a[0])))  # noqa: ARG005
    for value in (str(spec_on_disk), str(spec_on_disk.parent / "missing.yaml"), "specs/iris-quick.yaml",
                  "/etc/passwd", "~/.ssh/id_rsa", f"  {spec_on_disk}  "):
        error = refused(load_spec_param, value)
        assert error.field == "spec" and "one line of text" in error.message, value
    assert opened == []


def test_an_existing_and_a_missing_path_get_the_same_answer(spec_on_disk: Path) -> None:
    """No oracle: the refusal of a path does not say whether the file exists."""
    there = refused(load_spec_param, str(spec_on_disk))
    missing = refused(load_spec_param, str(spec_on_disk.with_name("nope.yaml")))
    assert there.message == missing.message


def test_the_spec_param_takes_text_and_objects() -> None:
    assert load_spec_param(json.dumps(VALID)) == VALID
    assert load_spec_param("name: x\ntask: regression\n") == {"name": "x", "task": "regression"}
    assert load_spec_param("{name: x, task: regression}") == {"name": "x", "task": "regression"}  # YAML flow
    assert load_spec_param(VALID) is VALID
    assert refused(load_spec_param, 7).field == "spec"
    assert refused(load_spec_param, ["name: x"]).field == "spec"


def test_the_local_user_still_names_a_file(spec_on_disk: Path) -> None:
    """`mlfleet sweep path.yaml` and `mlfleet plan` load the file their user names."""
    assert load_spec_file(spec_on_disk) == VALID
    assert load_spec(spec_on_disk) == load_spec(str(spec_on_disk)) == parse_spec(VALID)
    assert refused(load_spec_file, spec_on_disk.with_name("nope.yaml")).message.endswith("does not exist")


def test_a_file_too_large_is_refused_before_it_is_read(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "#" * MAX_SPEC_BYTES)
    monkeypatch.setattr(Path, "open", lambda *a, **k: pytest.fail("opened"))  # noqa: ARG005
    error = refused(load_spec_file, path)
    assert error.field == str(path) and TOO_LARGE in error.message


# --- spec_file: one of the project's spec files, nothing else ----------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root whose specs/ holds one spec, a symlink leading out of it, and a file outside."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "good.yaml").write_text(json.dumps(VALID))
    (tmp_path / "secret.yaml").write_text("password: hunter2\n")
    (tmp_path / "specs" / "escape.yaml").symlink_to(tmp_path / "secret.yaml")
    (tmp_path / "specs" / "inside.yaml").symlink_to(tmp_path / "specs" / "good.yaml")  # stays inside: fine
    return tmp_path


def test_the_project_spec_files_are_the_yaml_files_inside_specs(project: Path) -> None:
    assert project_spec_files(project) == {"specs/good.yaml": project / "specs" / "good.yaml",
                                           "specs/inside.yaml": project / "specs" / "good.yaml"}
    assert load_project_spec("specs/good.yaml", root=project) == VALID
    assert sorted(project_spec_files()) == sorted(f"specs/{p.name}" for p in (PROJECT_ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("name", ["specs/escape.yaml", "secret.yaml", "../secret.yaml", "specs/../secret.yaml",
                                  "{root}/secret.yaml", "{root}/specs/good.yaml", "/etc/passwd",
                                  "../../etc/passwd", "specs/good.yaml/..", "specs", "", None, 7])
def test_spec_file_refuses_anything_else(project: Path, name: Any) -> None:
    name = name.format(root=project) if isinstance(name, str) else name
    error = refused(load_project_spec, name, root=project)
    assert error.field == "spec_file"
    assert error.message.endswith("is not one of the project's spec files; choose one of specs/good.yaml, "
                                  "specs/inside.yaml")
    assert "hunter2" not in str(error) and "password" not in str(error)


# --- size and depth, before anything is parsed or validated ------------------------------------


@pytest.mark.parametrize("spec", [
    {**VALID, "target": "t" * (MAX_SPEC_BYTES + 1)},
    {**VALID, "models": [{"type": "logistic_l1", "params": {"C": list(range(300_000))}}]},
    {**VALID, "models": [{"type": "logistic_l1", "params": {"C": [None] * 300_000}}]},
    {**VALID, "dataset": {"builtin": "iris", "features": ["x" * 1000] * 1100}},
], ids=["long string", "long list", "list of nulls", "many strings"])
def test_an_object_spec_over_the_size_limit_is_refused(spec: dict[str, Any]) -> None:
    """A spec given as an object (REST conf) is measured like text, without serializing it."""
    for load in (load_spec_param, load_spec_object, parse_spec):
        error = refused(load, spec)
        assert error.field == "spec" and TOO_LARGE in error.message


def test_an_object_spec_under_the_limit_is_measured_not_refused() -> None:
    big = {**VALID, "models": [{"type": "logistic_l1", "params": {"C": list(range(50_000))}}]}
    assert load_spec_object(big) is big


def _nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    outer = inner
    for _ in range(depth):
        inner["x"] = {}
        inner = inner["x"]
    return outer


@pytest.mark.parametrize("spec", [
    "[" * 100_000,
    "x: " + "[" * 100_000 + "]" * 100_000,
    "{" * 100_000,
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
    "[" * 50_000 + "]" * 50_000,
    "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    {**VALID, "models": [{"type": "xgboost", "params": {"max_depth": _nested(50_000)}}]},
    _nested(MAX_SPEC_DEPTH + 1),
], ids=["yaml flow list", "yaml in a mapping", "json-like braces", "json", "balanced", "yaml block",
        "object", "object just too deep"])
def test_deep_nesting_is_a_spec_error_not_a_recursion_error(spec: Any) -> None:
    error = refused(load_spec_param, spec)
    assert error.field == "spec" and TOO_DEEP in error.message
    if isinstance(spec, dict):
        assert TOO_DEEP in refused(parse_spec, spec).message


def test_nesting_that_specs_use_still_loads() -> None:
    text = json.dumps({**VALID, "models": [{"type": "mlp", "params": {
        "hidden": [[[64, 32], [128]], [[256]]], "name": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "q": '\\"[[[[[[[[[[[[[[[[[[[[[[['}}]})
    assert load_spec_text(text)["models"][0]["params"]["name"].startswith("[[[")
    assert load_spec_object(_nested(MAX_SPEC_DEPTH - 1))


# --- the deployment's limits on what a spec buys ------------------------------------------------


def with_field(path: str, value: Any, base: dict[str, Any] = VALID) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    *sections, key = path.split(".")
    target = spec
    for section in sections:
        target = target.setdefault(section, {}) if not section.startswith("models[") else target["models"][0]
    target[key] = value
    return spec


@pytest.mark.parametrize(("field", "value", "base", "message"), [
    ("budget.timeout_minutes", 1e9, VALID, "1e+09 is above the deployment's limit 1440 (MLFLEET_MAX_TIMEOUT_MINUTES)"),
    ("budget.timeout_minutes", 1441, VALID, "1441 is above the deployment's limit 1440 (MLFLEET_MAX_TIMEOUT_MINUTES)"),
    ("budget.max_parallel", 10**6, VALID, "1000000 is above the deployment's limit 64 (MLFLEET_MAX_PARALLEL)"),
    ("resources.cpu", 1e6, VALID, "1e+06 is above the deployment's limit 192 (MLFLEET_MAX_CPU)"),
    ("resources.memory_gb", 10**7, VALID, "1e+07 is above the deployment's limit 2048 (MLFLEET_MAX_MEMORY_GB)"),
    ("resources.gpu", 10**4, VALID, "10000 is above the deployment's limit 8 (MLFLEET_MAX_GPU)"),
    ("models[0].resources.gpu", 9, VALID, "9 is above the deployment's limit 8 (MLFLEET_MAX_GPU)"),
    ("models[0].resources.cpu", 193, VALID, "193 is above the deployment's limit 192 (MLFLEET_MAX_CPU)"),
    ("search.batch_size", 10**6, BAYES, "1000000 is above the deployment's limit 256 (MLFLEET_MAX_BATCH_SIZE)"),
    ("search.n_trials", 10**9, BAYES, "1000000000 is above the deployment's limit 100000 (MLFLEET_MAX_TRIALS)"),
    ("search.n_trials", 50_000, BAYES, "50000 trials, 4 a round (search.batch_size, else budget.max_parallel), "
                                       "are 12500 rounds, above the deployment's limit 1000 (MLFLEET_MAX_ROUNDS)"),
])
def test_a_field_that_buys_more_than_the_limit_is_refused(field: str, value: Any, base: dict[str, Any],
                                                          message: str) -> None:
    error = refused(parse_spec, with_field(field, value, base))
    assert error.field == field
    assert error.message.startswith(message)


@pytest.mark.parametrize(("text", "field"), [
    ("budget: {timeout_minutes: .inf}", "budget.timeout_minutes"),
    ("budget: {timeout_minutes: .nan}", "budget.timeout_minutes"),
    ("resources: {cpu: .inf}", "resources.cpu"),
    ("resources: {memory_gb: .nan}", "resources.memory_gb"),
    ("cv: {folds: 5}\nsearch: {prune: {p_value: .nan}}", "search.prune.p_value"),
])
def test_a_number_that_is_not_finite_is_refused(text: str, field: str) -> None:
    """An infinite timeout never fires (and overflows a pod's deadline); an infinite request never schedules."""
    error = refused(parse_spec, {**VALID, **load_spec_text(text)})
    assert error.field == field and error.message.endswith("is not a finite number")


def test_json_infinity_is_refused_too() -> None:
    error = refused(parse_spec, load_spec_text(json.dumps(with_field("budget.timeout_minutes", float("inf")))))
    assert str(error) == "budget.timeout_minutes: inf is not a finite number"


def test_a_grid_over_the_trial_limit_names_the_setting() -> None:
    spec = {**VALID, "models": [{"type": "logistic_l1", "params": {"C": list(range(1000)), "tol": list(range(101))}}]}
    error = refused(parse_spec, spec)
    assert error.field == "models"
    assert "101,000 trials, more than 100,000 (the deployment's limit, MLFLEET_MAX_TRIALS" in error.message


def test_an_override_is_held_to_the_same_limits() -> None:
    error = refused(parse_spec, apply_overrides(BAYES, {"timeout_minutes": 1e9}))
    assert str(error).startswith("budget.timeout_minutes: 1e+09 is above the deployment's limit 1440")
    assert refused(parse_spec, apply_overrides(BAYES, {"max_parallel": 65})).field == "budget.max_parallel"
    assert refused(parse_spec, apply_overrides(BAYES, {"n_trials": 100_001})).field == "search.n_trials"


def test_the_limits_are_read_when_a_spec_is_validated(monkeypatch) -> None:
    """Set by the deployment (MLFLEET_MAX_*), read at validation time, never frozen at import."""
    long = with_field("budget.timeout_minutes", 2000)
    refused(parse_spec, long)
    monkeypatch.setenv("MLFLEET_MAX_TIMEOUT_MINUTES", "2880")
    assert parse_spec(long).budget.timeout_minutes == 2000
    monkeypatch.setenv("MLFLEET_MAX_GPU", "0")
    error = refused(parse_spec, with_field("resources.gpu", 1))
    assert str(error) == "resources.gpu: 1 is above the deployment's limit 0 (MLFLEET_MAX_GPU)"
    assert ExperimentSpec.model_validate(with_field("resources.gpu", 1), context={"limits": Limits(max_gpu=1)})
    assert parse_spec(with_field("resources.gpu", 1), limits=Limits(max_gpu=1)).resources.gpu == 1


def test_an_already_built_spec_is_checked_again_before_it_runs(monkeypatch) -> None:
    from mlfleet.spec.validate import check_static

    spec = parse_spec(with_field("budget.max_parallel", 32))
    check_static(spec)
    monkeypatch.setenv("MLFLEET_MAX_PARALLEL", "16")
    error = refused(check_static, spec)
    assert str(error) == "budget.max_parallel: 32 is above the deployment's limit 16 (MLFLEET_MAX_PARALLEL)"


def test_the_defaults_keep_every_shipped_spec_valid() -> None:
    for path in sorted((PROJECT_ROOT / "specs").glob("*.yaml")):
        assert load_spec(path).name == path.stem
    at_the_limits = {**BAYES, "budget": {"max_parallel": 64, "timeout_minutes": 1440},
                     "resources": {"cpu": 192, "memory_gb": 2048, "gpu": 8},
                     "search": {"strategy": "bayes", "n_trials": 100_000, "batch_size": 100}}
    assert parse_spec(at_the_limits).budget.timeout_minutes == 1440


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("MLFLEET_MAX_TIMEOUT_MINUTES", "5",
     "error: budget.timeout_minutes: 10 is above the deployment's limit 5 (MLFLEET_MAX_TIMEOUT_MINUTES)"),
    ("MLFLEET_MAX_TIMEOUT_MINUTES", "inf", "error: MLFLEET_MAX_TIMEOUT_MINUTES: Input should be a finite number"),
    ("MLFLEET_MAX_GPU", "lots", "error: MLFLEET_MAX_GPU: Input should be a valid integer"),
])
def test_the_cli_applies_the_limits_in_one_line(settings, monkeypatch, variable: str, value: str, line: str) -> None:
    """`mlfleet plan` and `mlfleet sweep` read the same limits; a spec over one, or a limit that is not a
    number, is one line naming it and exit 2, before anything is written."""
    from typer.testing import CliRunner

    from mlfleet.cli import app

    monkeypatch.setenv(variable, value)
    for command in ("plan", "sweep"):
        result = CliRunner().invoke(app, [command, str(PROJECT_ROOT / "specs" / "iris-quick.yaml")])
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [result.stderr.splitlines()[0]] and result.stderr.startswith(line)
    assert not settings.experiments_dir.exists()
