"""Trigger-form overrides: set on the spec's mapping, then validated as the field they replace."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlfleet.spec import OVERRIDES, SpecError, apply_overrides, given_overrides, load_spec_data, parse_spec

ROOT = Path(__file__).resolve().parents[3]
RANDOM = {
    "name": "iris-random",
    "task": "classification",
    "target": "target",
    "metric": "accuracy",
    "dataset": {"builtin": "iris"},
    "search": {"strategy": "random", "n_trials": 4},
    "models": [{"type": "random_forest", "params": {"max_depth": {"int": [2, 6]}}}],
}


def refused(spec: dict[str, Any], overrides: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(apply_overrides(spec, overrides))
    return info.value


def test_each_override_sets_its_field_and_leaves_the_input_alone() -> None:
    before = copy.deepcopy(RANDOM)
    spec = parse_spec(apply_overrides(RANDOM, {"n_trials": 9, "max_parallel": 3, "timeout_minutes": 2.5,
                                               "backend": "kubernetes"}))
    assert (spec.search.n_trials, spec.budget.max_parallel, spec.budget.timeout_minutes, spec.backend) == (
        9, 3, 2.5, "kubernetes")
    assert spec.search.strategy == "random" and spec.budget == parse_spec(RANDOM).budget.model_copy(
        update={"max_parallel": 3, "timeout_minutes": 2.5})
    assert RANDOM == before


def test_no_override_and_null_overrides_keep_the_spec() -> None:
    assert apply_overrides(RANDOM, {}) == RANDOM
    assert apply_overrides(RANDOM, {"n_trials": None, "backend": None}) == RANDOM


def test_given_overrides_picks_the_set_ones_from_the_params() -> None:
    params = {"spec_file": "specs/iris-quick.yaml", "spec": None, "backend": None, "n_trials": 5,
              "max_parallel": None, "timeout_minutes": 1.5, "sweep": None}
    assert given_overrides(params) == {"n_trials": 5, "timeout_minutes": 1.5}
    assert set(OVERRIDES) == {"n_trials", "max_parallel", "timeout_minutes", "backend"}


def test_a_section_the_spec_leaves_out_is_created() -> None:
    spec = {k: v for k, v in RANDOM.items() if k != "budget"}
    assert apply_overrides({**spec, "budget": None}, {"max_parallel": 2})["budget"] == {"max_parallel": 2}
    assert apply_overrides(spec, {"timeout_minutes": 5})["budget"] == {"timeout_minutes": 5}


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"n_trials": 0}, "search.n_trials", "greater than or equal to 1"),
    ({"n_trials": "many"}, "search.n_trials", "valid integer"),
    ({"max_parallel": 0}, "budget.max_parallel", "greater than or equal to 1"),
    ({"timeout_minutes": 0}, "budget.timeout_minutes", "greater than 0"),
    ({"timeout_minutes": -3}, "budget.timeout_minutes", "greater than 0"),
    ({"backend": "gpu"}, "backend", "'local', 'sagemaker' or 'kubernetes'"),
])
def test_a_bad_override_fails_as_the_field_it_sets(overrides, field, words) -> None:
    err = refused(RANDOM, overrides)
    assert err.field == field and words in err.message


def test_n_trials_on_a_grid_sweep_is_refused_with_the_field_named() -> None:
    grid = load_spec_data(ROOT / "specs" / "iris-quick.yaml")
    assert grid["search"]["strategy"] == "grid"
    with pytest.raises(SpecError) as info:
        apply_overrides(grid, {"n_trials": 5})
    assert info.value.field == "search.n_trials" and "random or bayes" in info.value.message
    no_search = {k: v for k, v in grid.items() if k != "search"}  # the default strategy is grid
    with pytest.raises(SpecError, match=r"^search\.n_trials: .*'grid'"):
        apply_overrides(no_search, {"n_trials": 5})


def test_an_unknown_override_or_a_section_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(SpecError, match=r"^folds: not an override; the overrides are n_trials, max_parallel"):
        apply_overrides(RANDOM, {"folds": 3})
    with pytest.raises(SpecError, match=r"^budget: expected a mapping to set the max_parallel override in, got 'lots'"):
        apply_overrides({**RANDOM, "budget": "lots"}, {"max_parallel": 2})


def test_load_spec_data_gives_the_unvalidated_mapping(tmp_path: Path) -> None:
    path = ROOT / "specs" / "iris-quick.yaml"
    data = load_spec_data(path)
    assert data["name"] == "iris-quick" and load_spec_data(str(path)) == data
    assert load_spec_data(path.read_text()) == data
    assert load_spec_data('{"name": "x", "models": []}') == {"name": "x", "models": []}  # not validated here
    assert load_spec_data(RANDOM) is RANDOM
    with pytest.raises(SpecError, match="does not exist"):
        load_spec_data(tmp_path / "nope.yaml")
