"""The spec contract of shared/experiment-spec.md: good specs parse, every bad one names its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlfleet.spec import ExperimentSpec, SpecError, load_spec, parse_spec
from mlfleet.spec.validate import check_static

ROOT = Path(__file__).resolve().parents[3]

# The example block of experiment-spec.md, verbatim.
DOC_EXAMPLE = """\
name: churn-baseline            # [a-z0-9-]+, names the experiment's results and jobs
task: classification            # classification | regression
target: churned                 # label column
metric: roc_auc                 # a scikit-learn scorer name; higher-is-better handled by the scorer
dataset:                        # exactly one of:
  feature_service: churn_v1     #   a Feast feature service (point-in-time training set), or
  # path: data/train.parquet    #   a Parquet or CSV file, or
  # builtin: breast_cancer      #   a dataset shipped with scikit-learn (diabetes, breast_cancer, wine, iris, ...)
cv: {folds: 5, seed: 0}         # StratifiedKFold for classification, KFold for regression, shuffle=True, random_state=seed
search:
  strategy: grid                # grid | random | bayes
  # n_trials: 40                #   random and bayes: how many trials in all
  # batch_size: 8               #   bayes: trials proposed per round and run in parallel
models:
  - type: xgboost               # see the model zoo below
    params:                     # grid: lists; random/bayes: ranges, or lists for categorical choices
      max_depth: [3, 5, 7]
      learning_rate: [0.05, 0.1]
      n_estimators: [200]
  - type: random_forest
    params: {n_estimators: [100, 300], max_depth: [null, 10]}
  - type: logistic_l1
    params: {C: [0.01, 0.1, 1, 10, 100]}
resources:                      # per trial; a model entry may override with its own `resources`
  cpu: 2
  memory_gb: 4
  gpu: 0
backend: local                  # local | sagemaker | kubernetes (default from configuration)
budget: {max_parallel: 8, timeout_minutes: 60}
"""

DOC_RANGES = """\
name: ranges
task: classification
target: target
metric: roc_auc
dataset: {builtin: breast_cancer}
search: {strategy: bayes, n_trials: 12, batch_size: 4}
models:
  - type: xgboost
    params:
      max_depth: {int: [2, 10]}
      learning_rate: {float: [0.01, 0.3], log: true}
      booster: [gbtree, dart]        # a list is a categorical choice
"""

VALID: dict[str, Any] = {
    "name": "bc-quick",
    "task": "classification",
    "target": "target",
    "metric": "roc_auc",
    "dataset": {"builtin": "breast_cancer"},
    "cv": {"folds": 3, "seed": 0},
    "models": [
        {"type": "xgboost", "params": {"max_depth": [2, 3], "n_estimators": [20]}},
        {"type": "logistic_l1", "params": {"C": [0.1, 1.0]}},
    ],
}


def spec_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data.update(changes)
    return data


def random_spec(params: dict[str, Any]) -> dict[str, Any]:
    return spec_with(search={"strategy": "random", "n_trials": 4}, models=[{"type": "xgboost", "params": params}])


def refused(data: Any, *, static: bool = False) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec = parse_spec(data)
        if static:
            check_static(spec)
    return info.value


# --- good specs --------------------------------------------------------------------------------


def test_valid_spec_parses_with_documented_defaults() -> None:
    spec = parse_spec(VALID)
    check_static(spec)
    assert isinstance(spec, ExperimentSpec)
    assert spec.name == "bc-quick"
    assert spec.dataset.builtin == "breast_cancer"
    assert (spec.cv.folds, spec.cv.seed) == (3, 0)
    assert spec.search.strategy == "grid"
    assert [m.type for m in spec.models] == ["xgboost", "logistic_l1"]
    assert spec.models[0].params == {"max_depth": [2, 3], "n_estimators": [20]}
    assert spec.backend is None
    assert spec.budget.max_parallel == 8


def test_doc_example_parses_and_passes_static_checks() -> None:
    spec = load_spec(DOC_EXAMPLE)
    check_static(spec)
    assert spec.name == "churn-baseline"
    assert spec.dataset.feature_service == "churn_v1"
    assert spec.dataset.path is None and spec.dataset.builtin is None
    assert spec.models[1].params == {"n_estimators": [100, 300], "max_depth": [None, 10]}
    assert spec.models[2].params["C"] == [0.01, 0.1, 1, 10, 100]
    assert (spec.resources.cpu, spec.resources.memory_gb, spec.resources.gpu) == (2, 4, 0)
    assert spec.resources_for(0) == spec.resources
    assert spec.backend == "local"
    assert (spec.budget.max_parallel, spec.budget.timeout_minutes) == (8, 60)


def test_doc_example_with_a_builtin_dataset_prepares(settings) -> None:
    from mlfleet.sweep import prepare

    text = DOC_EXAMPLE.replace("feature_service: churn_v1", "builtin: breast_cancer").replace(
        "target: churned", "target: target"
    )
    context = prepare(text, settings=settings, run_id="r1")
    assert context.experiment == "churn-baseline"
    assert context.n_rows == 569
    assert len(context.features) == 30 and "target" not in context.features
    assert context.n_trials == 3 * 2 * 1 + 2 * 2 + 5
    assert Path(context.data_path).is_file()
    assert Path(context.results_dir) == settings.experiments_dir / "churn-baseline" / "r1"


def test_doc_ranges_parse_for_bayes() -> None:
    from mlfleet.spec import Range, param_domain

    spec = load_spec(DOC_RANGES)
    params = spec.models[0].params
    assert param_domain(params["max_depth"]) == Range(kind="int", low=2, high=10, log=False)
    assert param_domain(params["learning_rate"]) == Range(kind="float", low=0.01, high=0.3, log=True)
    assert param_domain(params["booster"]) == ["gbtree", "dart"]


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_load(path: Path) -> None:
    spec = load_spec(path)
    check_static(spec)
    assert spec.name == path.stem


def test_load_spec_accepts_json_text_and_dict() -> None:
    import json

    assert load_spec(json.dumps(VALID)) == parse_spec(VALID)
    assert load_spec(copy.deepcopy(VALID)) == parse_spec(VALID)


# --- bad specs: every one names its field -------------------------------------------------------


def test_unknown_model_type() -> None:
    err = refused(spec_with(models=[{"type": "catboost", "params": {}}]))
    assert err.field == "models[0].type"
    assert "catboost" in err.message and "xgboost" in err.message
    assert str(err).startswith("models[0].type: ")


def test_unknown_model_type_in_second_entry() -> None:
    err = refused(spec_with(models=[VALID["models"][0], {"type": "svm"}]))
    assert err.field == "models[1].type"


def test_unknown_param_is_refused_by_static_check() -> None:
    spec = parse_spec(spec_with(models=[{"type": "xgboost", "params": {"foo": [1]}}]))
    with pytest.raises(SpecError) as info:
        check_static(spec)
    assert info.value.field == "models[0].params.foo"
    assert "max_depth" in info.value.message  # the known set is listed


def test_unknown_param_of_second_model() -> None:
    err = refused(
        spec_with(models=[VALID["models"][0], {"type": "random_forest", "params": {"max_dept": [3]}}]), static=True
    )
    assert err.field == "models[1].params.max_dept"
    assert "random_forest" in err.message


def test_regression_params_are_checked_against_the_regressor() -> None:
    # logistic_l1 is Lasso for regression: `alpha` is known, `C` is not.
    ok = spec_with(task="regression", metric="r2", models=[{"type": "logistic_l1", "params": {"alpha": [0.1]}}])
    check_static(parse_spec(ok))
    bad = spec_with(task="regression", metric="r2", models=[{"type": "logistic_l1", "params": {"C": [0.1]}}])
    assert refused(bad, static=True).field == "models[0].params.C"


def test_empty_grid_list() -> None:
    err = refused(spec_with(models=[{"type": "xgboost", "params": {"max_depth": []}}]))
    assert err.field == "models[0].params.max_depth"
    assert "empty list" in err.message


def test_grid_value_must_be_a_list() -> None:
    err = refused(spec_with(models=[{"type": "xgboost", "params": {"max_depth": 3}}]))
    assert err.field == "models[0].params.max_depth"
    assert "list" in err.message


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"max_depth": {"int": [5, 2]}}, "models[0].params.max_depth.int", "low must be < high"),
        ({"max_depth": {"int": [5, 5]}}, "models[0].params.max_depth.int", "low must be < high"),
        ({"learning_rate": {"float": [0.0, 0.3], "log": True}}, "models[0].params.learning_rate.float", "log range needs low > 0"),
        ({"learning_rate": {"float": [-1, 0.3], "log": True}}, "models[0].params.learning_rate.float", "log range needs low > 0"),
        ({"max_depth": {"int": [1.5, 4]}}, "models[0].params.max_depth.int", "integers"),
        ({"max_depth": {"int": [2, 8.5]}}, "models[0].params.max_depth.int", "integers"),
        ({"max_depth": {"int": 3}}, "models[0].params.max_depth.int", "two numbers"),
        ({"max_depth": {"int": [1, 2, 3]}}, "models[0].params.max_depth.int", "two numbers"),
        ({"max_depth": {"int": [True, 3]}}, "models[0].params.max_depth.int", "two numbers"),
        ({"max_depth": {"int": ["a", 3]}}, "models[0].params.max_depth.int", "two numbers"),
        ({"learning_rate": {"float": [0.1, float("inf")]}}, "models[0].params.learning_rate.float", "low must be < high"),
        ({"max_depth": {"int": [1, 3], "step": 1}}, "models[0].params.max_depth", "a range is"),
        ({"max_depth": {"int": [1, 3], "float": [1, 3]}}, "models[0].params.max_depth", "a range is"),
    ],
)
def test_bad_range(params: dict[str, Any], field: str, words: str) -> None:
    err = refused(random_spec(params))
    assert err.field == field
    assert words in err.message


def test_range_under_grid_strategy() -> None:
    err = refused(spec_with(models=[{"type": "xgboost", "params": {"max_depth": {"int": [2, 8]}}}]))
    assert err.field == "models[0].params.max_depth"
    assert "random or bayes" in err.message


def test_missing_target() -> None:
    data = spec_with()
    del data["target"]
    err = refused(data)
    assert err.field == "target"
    assert "missing" in err.message


def test_empty_target() -> None:
    assert refused(spec_with(target="")).field == "target"


def test_unknown_scorer() -> None:
    err = refused(spec_with(metric="rocauc"), static=True)
    assert err.field == "metric"
    assert "'rocauc'" in err.message


@pytest.mark.parametrize("name", ["Churn_Model", "churn model", "churn.v1", "ÄÖ", "", "-", "-churn", "churn-"])
def test_name_pattern(name: str) -> None:
    err = refused(spec_with(name=name))
    assert err.field == "name"
    assert "[a-z0-9-]+" in err.message or "at least" in err.message


def test_name_pattern_message_shows_the_value() -> None:
    err = refused(spec_with(name="Churn_Model"))
    assert str(err) == "name: 'Churn_Model' must match [a-z0-9-]+ with a letter or digit at both ends (lower-case letters, digits, dashes)"


def test_name_too_long() -> None:
    assert refused(spec_with(name="a" * 49)).field == "name"


def test_two_dataset_kinds() -> None:
    err = refused(spec_with(dataset={"builtin": "iris", "path": "data/train.parquet"}))
    assert err.field == "dataset"
    assert "exactly one" in err.message and "path" in err.message and "builtin" in err.message


def test_no_dataset_kind() -> None:
    err = refused(spec_with(dataset={}))
    assert err.field == "dataset"
    assert "exactly one" in err.message


@pytest.mark.parametrize("strategy", ["random", "bayes"])
def test_random_and_bayes_need_n_trials(strategy: str) -> None:
    err = refused(spec_with(search={"strategy": strategy}))
    assert err.field == "search.n_trials"
    assert strategy in err.message


def test_unknown_strategy() -> None:
    assert refused(spec_with(search={"strategy": "evolution"})).field == "search.strategy"


def test_unknown_top_level_field() -> None:
    err = refused(spec_with(colour="red"))
    assert err.field == "colour"
    assert "unknown field" in err.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Metric": "accuracy"}, "Metric"),  # a capitalised key is still named
        ({"cv": {"folds": 3, "sed": 1}}, "cv.sed"),
        ({"resources": {"CPU": 2}}, "resources.CPU"),
        ({"dataset": {"builtin": "iris", "Features": ["a"]}}, "dataset.Features"),
        ({"models": [{"type": "xgboost", "Params": {}}]}, "models[0].Params"),
    ],
)
def test_unknown_nested_field(changes: dict[str, Any], field: str) -> None:
    err = refused(spec_with(**changes))
    assert err.field == field
    assert str(err).startswith(f"{field}: unknown field")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"task": "ranking"}, "task"),
        ({"cv": {"folds": 1}}, "cv.folds"),
        ({"models": []}, "models"),
        ({"models": ["xgboost"]}, "models[0]"),
        ({"resources": {"cpu": 0}}, "resources.cpu"),
        ({"backend": "ray"}, "backend"),
        ({"budget": {"max_parallel": 0}}, "budget.max_parallel"),
        ({"search": {"strategy": "random", "n_trials": 0}}, "search.n_trials"),
    ],
)
def test_other_bad_values(changes: dict[str, Any], field: str) -> None:
    assert refused(spec_with(**changes)).field == field


def test_model_resources_override() -> None:
    data = spec_with(models=[{"type": "xgboost", "params": {"max_depth": [2]}, "resources": {"cpu": 4}}])
    spec = parse_spec(data)
    assert spec.resources_for(0).cpu == 4
    bad = spec_with(models=[{"type": "xgboost", "params": {}, "resources": {"gpu": -1}}])
    assert refused(bad).field == "models[0].resources.gpu"


def test_spec_must_be_a_mapping() -> None:
    assert refused([1, 2]).field == "spec"


# --- YAML ----------------------------------------------------------------------------------------


def test_yaml_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\ntask: classification\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.field == str(path)
    assert "YAML does not parse at line" in info.value.message


def test_yaml_text_that_does_not_parse() -> None:
    with pytest.raises(SpecError) as info:
        load_spec("name: x\ntask: [a, b\n")
    assert info.value.field == "spec"
    assert "does not parse" in info.value.message


def test_yaml_python_tag_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: evil\ntarget: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert not marker.exists()
    assert info.value.field == str(path)
    assert "python/object/apply:os.system" in info.value.message
    assert "tag not allowed" in info.value.message


def test_yaml_python_tag_in_text_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(SpecError) as info:
        load_spec(f"!!python/object/apply:os.system ['touch {marker}']\n")
    assert not marker.exists()
    assert info.value.field == "spec"
    assert "python/object/apply" in info.value.message


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "mapping" in info.value.message


def test_spec_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.field == "spec"
    assert "does not exist" in info.value.message


# --- checks against the data (prepare), and nothing written for a bad spec ----------------------


def test_target_not_a_column(settings) -> None:
    from mlfleet.sweep import prepare

    with pytest.raises(SpecError) as info:
        prepare(spec_with(target="churned"), settings=settings)
    assert info.value.field == "target"
    assert "'churned'" in info.value.message
    assert not settings.experiments_dir.exists()


def test_dataset_path_that_does_not_exist(settings, tmp_path: Path) -> None:
    from mlfleet.sweep import prepare

    missing = tmp_path / "no" / "train.parquet"
    with pytest.raises(SpecError) as info:
        prepare(spec_with(dataset={"path": str(missing)}), settings=settings)
    assert info.value.field == "dataset.path"
    assert str(missing) in info.value.message
    assert not settings.experiments_dir.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (spec_with(models=[{"type": "catboost"}]), "models[0].type"),
        (spec_with(models=[{"type": "xgboost", "params": {"foo": [1]}}]), "models[0].params.foo"),
        (spec_with(metric="rocauc"), "metric"),
        (spec_with(target="nope"), "target"),
        (spec_with(dataset={"builtin": "mnist"}), "dataset.builtin"),
        (spec_with(dataset={"builtin": "wine"}, metric="accuracy", cv={"folds": 49}), "cv.folds"),
        (spec_with(task="regression", dataset={"builtin": "iris"}, metric="r2", models=[{"type": "xgboost", "params": {"max_depth": [2]}}], cv={"folds": 3}, target="nope"), "target"),
    ],
)
def test_prepare_bad_spec_leaves_no_results_directory(settings, data: dict[str, Any], field: str) -> None:
    from mlfleet.sweep import prepare

    with pytest.raises(SpecError) as info:
        prepare(data, settings=settings, run_id="r1")
    assert info.value.field == field
    assert not settings.experiments_dir.exists()


# --- checks of the target against the data (mlfleet.spec.validate.check_target) ------------------


def _frame(labels: list[Any]) -> Any:
    import pandas as pd

    return pd.DataFrame({"x": range(len(labels)), "label": labels})


def _target_spec(task: str = "classification", folds: int = 3) -> ExperimentSpec:
    return parse_spec(spec_with(task=task, target="label", cv={"folds": folds}))


@pytest.mark.parametrize(
    ("labels", "task", "folds", "field", "words"),
    [
        ([0, 1, None, 1, 0, 1], "classification", 2, "target", "1 missing values"),
        ([1] * 6, "classification", 2, "target", "single class"),
        ([0, 0, 0, 1, 1, 0], "classification", 3, "cv.folds", "only 2 rows"),
        ([0.5, 1.5], "regression", 3, "cv.folds", "only 2 rows"),
        (list(range(60)) * 2, "classification", 2, "task", "60 classes"),
    ],
)
def test_check_target(labels: list[Any], task: str, folds: int, field: str, words: str) -> None:
    from mlfleet.spec.validate import check_target

    with pytest.raises(SpecError) as info:
        check_target(_target_spec(task, folds), _frame(labels))
    assert info.value.field == field
    assert words in info.value.message


def test_check_target_boundary_is_folds_rows_per_class() -> None:
    """Exactly `folds` rows in the smallest class passes; one fewer is refused naming cv.folds."""
    from mlfleet.spec.validate import check_target

    spec = _target_spec("classification", 3)
    assert check_target(spec, _frame([0, 1, 2] * 3)) is None
    with pytest.raises(SpecError) as err:
        check_target(spec, _frame([0, 1, 2] * 2 + [0, 1]))
    assert err.value.field == "cv.folds" and "class 2" in str(err.value)


# --- search.prune --------------------------------------------------------------------------------


def test_prune_is_off_by_default() -> None:
    assert parse_spec(VALID).search.prune is None
    assert parse_spec(spec_with(search={"prune": False})).search.prune is None


def test_prune_true_is_the_defaults() -> None:
    from mlfleet.spec.model import Prune

    five = {"folds": 5, "seed": 0}
    assert parse_spec(spec_with(cv=five, search={"prune": True})).search.prune == Prune(min_folds=2, p_value=0.1)
    assert parse_spec(spec_with(cv=five, search={"prune": {}})).search.prune == Prune(min_folds=2, p_value=0.1)


def test_prune_yaml_mapping() -> None:
    spec = load_spec(DOC_RANGES.replace("batch_size: 4}", "batch_size: 4, prune: {min_folds: 3, p_value: 0.2}}"))
    assert (spec.search.prune.min_folds, spec.search.prune.p_value) == (3, 0.2)


@pytest.mark.parametrize(
    ("prune", "folds", "field", "words"),
    [
        ("yes", 5, "search.prune", "give true, false or {min_folds: 2, p_value: 0.1}, got 'yes'"),
        (3, 5, "search.prune", "give true, false or"),
        ({"min_folds": 1}, 5, "search.prune.min_folds", "greater than or equal to 2"),
        ({"min_folds": 5}, 5, "search.prune.min_folds", "5 leaves no fold to skip with cv.folds 5; give at most 4"),
        ({"p_value": 0}, 5, "search.prune.p_value", "greater than 0"),
        ({"p_value": 1.5}, 5, "search.prune.p_value", "less than 1"),
        ({"p_value": "often"}, 5, "search.prune.p_value", "valid number"),
        ({"p_value": 0.05}, 5, "search.prune.p_value", "0.05 can never prune with cv.folds 5"),
        (True, 3, "search.prune.p_value", "give p_value above 0.25 or more folds"),
        ({"min_fold": 2}, 5, "search.prune.min_fold", "unknown field"),
    ],
)
def test_bad_prune(prune: Any, folds: int, field: str, words: str) -> None:
    err = refused(spec_with(cv={"folds": folds, "seed": 0}, search={"strategy": "grid", "prune": prune}))
    assert err.field == field
    assert words in err.message
    assert str(err).startswith(f"{field}: ")


def test_prune_reaches_the_batch_job_and_its_hyperparameters(settings) -> None:
    from mlfleet.sweep import batch_job, prepare
    from mlfleet.training.entrypoint import hyperparameters_of

    batch = {"batch_id": "r0-x", "trials": []}
    plain = prepare(spec_with(name="no-prune"), settings=settings, run_id="r1")
    assert batch_job(plain, batch)["prune"] is None
    assert "prune_min_folds" not in hyperparameters_of(batch_job(plain, batch))
    pruned = prepare(spec_with(name="pruned", cv={"folds": 5, "seed": 0}, search={"prune": {"p_value": 0.2}}),
                     settings=settings, run_id="r1")
    assert batch_job(pruned, batch)["prune"] == {"min_folds": 2, "p_value": 0.2}
    hyperparameters = hyperparameters_of(batch_job(pruned, batch))
    assert (hyperparameters["prune_min_folds"], hyperparameters["prune_p_value"]) == ("2", "0.2")
