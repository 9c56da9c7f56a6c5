"""Search-space expansion (grid, random) and batch packing."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlfleet.spec import parse_spec
from mlfleet.trials import (
    DEFAULT_FOLD_SECONDS,
    Trial,
    count_trials,
    default_fold_seconds,
    distinct_configurations,
    expand,
    expand_grid,
    expand_random,
    make_trial,
    plan_batches,
    predict_trial_seconds,
    sample_params,
    space_notice,
    trial_id,
)

ID = re.compile(r"^(?P<model>[a-z0-9-]+)-(?P<hex>[0-9a-f]{8})$")


def grid_spec(models: list[dict[str, Any]]) -> Any:
    return parse_spec({
        "name": "grid", "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "models": models,
    })


def random_spec(models: list[dict[str, Any]], *, n_trials: int, seed: int = 0) -> Any:
    return parse_spec({
        "name": "rnd", "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "cv": {"folds": 3, "seed": seed},
        "search": {"strategy": "random", "n_trials": n_trials}, "models": models,
    })


GRID_MODELS = [
    {"type": "xgboost", "params": {"max_depth": [3, 5, 7], "learning_rate": [0.05, 0.1], "n_estimators": [200]}},
    {"type": "random_forest", "params": {"n_estimators": [100, 300], "max_depth": [None, 10]}},
    {"type": "logistic_l1", "params": {"C": [0.01, 0.1, 1, 10, 100]}},
]

RANDOM_MODELS = [
    {"type": "xgboost", "params": {
        "max_depth": {"int": [2, 10]},
        "learning_rate": {"float": [0.01, 0.3], "log": True},
        "min_child_weight": {"int": [1, 1000], "log": True},
        "subsample": {"float": [0.5, 1.0]},
        "booster": ["gbtree", "dart"],
        "n_estimators": 50,
    }},
    {"type": "logistic_l1", "params": {"C": {"float": [1e-3, 100.0], "log": True}}},
]


# --- grid ----------------------------------------------------------------------------------------


def test_grid_count_is_product_of_list_lengths_summed_over_models() -> None:
    trials = expand_grid(grid_spec(GRID_MODELS))
    assert len(trials) == 3 * 2 * 1 + 2 * 2 + 5 == 15
    assert [t.model for t in trials].count("xgboost") == 6
    assert [t.model for t in trials].count("random_forest") == 4
    assert [t.model for t in trials].count("logistic_l1") == 5
    assert len({t.trial_id for t in trials}) == 15


def test_grid_covers_every_combination() -> None:
    trials = expand_grid(grid_spec(GRID_MODELS))
    forest = sorted((t.params["n_estimators"], t.params["max_depth"] or 0) for t in trials if t.model == "random_forest")
    assert forest == [(100, 0), (100, 10), (300, 0), (300, 10)]
    assert {t.model_index for t in trials if t.model == "logistic_l1"} == {2}
    assert sorted(t.params["C"] for t in trials if t.model == "logistic_l1") == [0.01, 0.1, 1, 10, 100]


def test_model_without_params_is_one_trial() -> None:
    trials = expand_grid(grid_spec([{"type": "lightgbm"}, {"type": "logistic_l1", "params": {"C": [1, 2]}}]))
    assert len(trials) == 3
    assert trials[0].params == {}


def test_expand_dispatches_on_strategy() -> None:
    assert expand(grid_spec(GRID_MODELS)) == expand_grid(grid_spec(GRID_MODELS))
    spec = random_spec(RANDOM_MODELS, n_trials=6)
    assert expand(spec) == expand_random(spec)
    bayes = parse_spec({**spec.model_dump(mode="json", exclude_none=True), "search": {"strategy": "bayes", "n_trials": 4}})
    with pytest.raises(ValueError, match="mlfleet.tuning"):
        expand(bayes)


# --- trial ids -----------------------------------------------------------------------------------


def test_trial_ids_are_deterministic_and_well_formed() -> None:
    first = expand_grid(grid_spec(GRID_MODELS))
    second = expand_grid(grid_spec(GRID_MODELS))
    assert [t.trial_id for t in first] == [t.trial_id for t in second]
    for trial in first:
        match = ID.match(trial.trial_id)
        assert match, trial.trial_id
        # job names allow no underscore: the model part is the type with dashes
        assert match["model"] == trial.model.replace("_", "-")


def test_trial_id_depends_on_params_not_their_order() -> None:
    a = trial_id("xgboost", {"max_depth": 3, "learning_rate": 0.1})
    assert a == trial_id("xgboost", {"learning_rate": 0.1, "max_depth": 3})
    assert a != trial_id("xgboost", {"max_depth": 4, "learning_rate": 0.1})
    assert a != trial_id("lightgbm", {"max_depth": 3, "learning_rate": 0.1})
    assert trial_id("random_forest", {"max_depth": None}) != trial_id("random_forest", {"max_depth": 10})


def test_trial_id_is_stable_across_releases() -> None:
    # A changed hash would orphan every checkpoint and running job: pin one value.
    import hashlib
    import json

    blob = json.dumps({"model": "xgboost", "params": {"max_depth": 3}}, sort_keys=True)
    assert trial_id("xgboost", {"max_depth": 3}) == "xgboost-" + hashlib.sha256(blob.encode()).hexdigest()[:8]


def test_trial_round_trips_through_dict() -> None:
    trial = make_trial("logistic_l1", {"C": 0.1}, 2, optuna_number=7)
    assert Trial.from_dict(trial.to_dict()) == trial
    assert trial.to_dict() == {"trial_id": trial.trial_id, "model": "logistic_l1", "params": {"C": 0.1},
                               "model_index": 2, "optuna_number": 7, "predicted_seconds": None}


def test_trial_round_trips_with_a_prediction_and_reads_old_round_files() -> None:
    trial = make_trial("xgboost", {"max_depth": 3}, 0)
    predicted = replace(trial, predicted_seconds=12.5)
    assert Trial.from_dict(predicted.to_dict()).predicted_seconds == 12.5
    assert predicted.to_dict()["predicted_seconds"] == 12.5
    # a round file written before predictions were carried has no such key
    old = {"trial_id": trial.trial_id, "model": "xgboost", "params": {"max_depth": 3}, "model_index": 0,
           "optuna_number": None}
    assert Trial.from_dict(old).predicted_seconds is None
    # a prediction is not part of the trial's identity
    assert Trial.from_dict(old) == predicted and predicted.trial_id == trial.trial_id


# --- random --------------------------------------------------------------------------------------


def test_random_is_seeded() -> None:
    a = expand_random(random_spec(RANDOM_MODELS, n_trials=20, seed=3))
    b = expand_random(random_spec(RANDOM_MODELS, n_trials=20, seed=3))
    c = expand_random(random_spec(RANDOM_MODELS, n_trials=20, seed=4))
    assert a == b
    assert [t.params for t in a] != [t.params for t in c]
    assert len(a) == 20


def test_random_takes_models_in_turn() -> None:
    trials = expand_random(random_spec(RANDOM_MODELS, n_trials=10))
    assert [t.model_index for t in trials] == [0, 1] * 5
    assert [t.model for t in trials] == ["xgboost", "logistic_l1"] * 5


def test_random_values_lie_in_their_ranges() -> None:
    trials = expand_random(random_spec(RANDOM_MODELS, n_trials=400))
    xgb = [t.params for t in trials if t.model == "xgboost"]
    lr = [t.params for t in trials if t.model == "logistic_l1"]
    assert len(xgb) == len(lr) == 200
    for p in xgb:
        assert isinstance(p["max_depth"], int) and 2 <= p["max_depth"] <= 10
        assert isinstance(p["min_child_weight"], int) and 1 <= p["min_child_weight"] <= 1000
        assert isinstance(p["learning_rate"], float) and 0.01 <= p["learning_rate"] <= 0.3
        assert 0.5 <= p["subsample"] <= 1.0
        assert p["booster"] in ("gbtree", "dart")
        assert p["n_estimators"] == 50  # a bare scalar is fixed
    for p in lr:
        assert 1e-3 <= p["C"] <= 100.0
    # int ranges reach both ends and everything between
    assert {p["max_depth"] for p in xgb} == set(range(2, 11))
    assert {p["booster"] for p in xgb} == {"gbtree", "dart"}


def test_log_ranges_sample_log_uniformly() -> None:
    trials = expand_random(random_spec(RANDOM_MODELS, n_trials=800))
    cs = [t.params["C"] for t in trials if t.model == "logistic_l1"]
    assert all(c > 0 for c in cs)
    # log-uniform on [1e-3, 1e2]: each decade holds ~1/5 of the draws; uniform would put ~90% above 10
    below_one = sum(c < 1 for c in cs) / len(cs)
    assert 0.5 < below_one < 0.7
    weights = [t.params["min_child_weight"] for t in trials if t.model == "xgboost"]
    assert sum(w < 32 for w in weights) / len(weights) > 0.35


# --- how many trials run: n_trials distinct ones, or the whole space when it holds fewer -----------

# The README's example: a LightGBM range and a random-forest grid of 4 combinations.
README_MODELS = [
    {"type": "lightgbm", "params": {"num_leaves": {"int": [8, 64]}, "learning_rate": {"float": [0.01, 0.3], "log": True}}},
    {"type": "random_forest", "params": {"n_estimators": [100, 300], "max_depth": [None, 8]}},
]
FOUR_CONFIGURATIONS = [{"type": "random_forest", "params": {"n_estimators": [100, 300], "max_depth": [None, 8]}}]


def _first_draws(spec: Any) -> list[Trial]:
    """What random search drew before repeats were drawn again: n_trials draws, repeats dropped."""
    import random

    rng, drawn = random.Random(spec.cv.seed), {}
    for i in range(spec.search.n_trials):
        index = i % len(spec.models)
        trial = make_trial(spec.models[index].type, sample_params(spec.models[index].params, rng), index)
        drawn.setdefault(trial.trial_id, trial)
    return list(drawn.values())


def test_a_continuous_range_makes_twenty_mean_twenty() -> None:
    spec = random_spec(README_MODELS, n_trials=20)
    trials = expand_random(spec)
    assert len(trials) == len({t.trial_id for t in trials}) == 20 == count_trials(spec)
    assert sum(t.model == "random_forest" for t in trials) == 4  # the grid's every combination, once
    assert trials == expand_random(spec)  # seeded: a rerun draws the same
    first = _first_draws(spec)
    assert len(first) < 20 and trials[:len(first)] == first  # the draws it always made come first, unchanged
    assert space_notice(strategy="random", asked=20, running=count_trials(spec)) is None


def test_a_small_categorical_space_runs_every_configuration_once_and_says_so() -> None:
    spec = random_spec(FOUR_CONFIGURATIONS, n_trials=20)
    trials = expand_random(spec)
    assert sorted(t.trial_id for t in trials) == sorted(t.trial_id for t in expand_grid(grid_spec(FOUR_CONFIGURATIONS)))
    assert count_trials(spec) == 4
    assert (space_notice(strategy="random", asked=20, running=count_trials(spec))
            == "the space holds 4 distinct configurations; running 4 of the 20 asked")


def test_an_int_range_counts_its_integers_and_a_space_of_exactly_n_trials_is_covered() -> None:
    # 50 integers, 50 trials: the draws repeat long before they cover the range, the rest come in order.
    spec = random_spec([{"type": "random_forest", "params": {"max_depth": {"int": [1, 50]}, "n_estimators": 10}}],
                       n_trials=50)
    assert sorted(t.params["max_depth"] for t in expand_random(spec)) == list(range(1, 51))
    bigger = random_spec([{"type": "random_forest", "params": {"max_depth": {"int": [1, 50]}}}], n_trials=60)
    assert len(expand_random(bigger)) == count_trials(bigger) == 50


def test_bayes_counts_the_space_and_models_of_one_type_share_configurations() -> None:
    bayes = parse_spec({**random_spec(FOUR_CONFIGURATIONS, n_trials=20).model_dump(exclude_none=True),
                        "search": {"strategy": "bayes", "n_trials": 20, "batch_size": 4}})
    assert count_trials(bayes) == 4
    # A second random_forest entry: (300, None) is one of the first entry's, (500, None) is new.
    twice = random_spec([*FOUR_CONFIGURATIONS, {"type": "random_forest",
                                                "params": {"n_estimators": [300, 500], "max_depth": [None]}}],
                        n_trials=20)
    assert distinct_configurations(twice, up_to=20) == 5 == len(expand_random(twice))
    assert distinct_configurations(random_spec(README_MODELS, n_trials=20), up_to=20) == 20
    assert count_trials(random_spec(README_MODELS, n_trials=5)) == 5


def test_space_notice_only_when_fewer_run_than_asked() -> None:
    assert space_notice(strategy="bayes", asked=8, running=1) == (
        "the space holds 1 distinct configuration; running 1 of the 8 asked")
    assert space_notice(strategy="random", asked=8, running=8) is None
    assert space_notice(strategy="grid", asked=None, running=12) is None


# --- batches -------------------------------------------------------------------------------------


def short_trials(n: int) -> list[Trial]:
    return [make_trial("logistic_l1", {"C": float(i)}, 0) for i in range(n)]


def test_predicted_seconds_scale_with_folds_and_estimators() -> None:
    rf = make_trial("random_forest", {"n_estimators": 300}, 0)
    assert predict_trial_seconds(rf, 5) == pytest.approx(DEFAULT_FOLD_SECONDS["random_forest"] * 5 * 3)
    assert predict_trial_seconds(rf, 5, lambda trial: 2.0 * 3) == pytest.approx(2.0 * 5 * 3)
    assert default_fold_seconds(rf) == pytest.approx(DEFAULT_FOLD_SECONDS["random_forest"] * 3)
    lr = make_trial("logistic_l1", {"C": 1}, 0)
    assert predict_trial_seconds(lr, 3) == pytest.approx(0.1 * 3)


@pytest.mark.parametrize("n_trials", [1, 7, 40, 41, 200])
@pytest.mark.parametrize("max_batches", [1, 3, 8])
def test_every_trial_in_exactly_one_batch(n_trials: int, max_batches: int) -> None:
    trials = short_trials(n_trials)
    batches = plan_batches(trials, folds=5, cores_per_batch=1, max_batches=max_batches, target_seconds=0.01)
    ids = [t.trial_id for b in batches for t in b.trials]
    assert sorted(ids) == sorted(t.trial_id for t in trials)
    assert len(ids) == len(set(ids))
    assert len(batches) == min(max_batches, n_trials)
    assert all(b.trials for b in batches)
    for batch in batches:
        expected = sum(predict_trial_seconds(t, 5) for t in batch.trials)
        assert batch.predicted_seconds == pytest.approx(expected)


def test_no_trials_no_batches() -> None:
    assert plan_batches([], folds=5, cores_per_batch=1, max_batches=4, target_seconds=1) == []


def test_batch_count_follows_the_target_seconds() -> None:
    trials = short_trials(40)  # 40 * 0.1 s * 5 folds = 20 core-seconds
    one = plan_batches(trials, folds=5, cores_per_batch=2, max_batches=8, target_seconds=60)
    assert len(one) == 1 and len(one[0].trials) == 40
    four = plan_batches(trials, folds=5, cores_per_batch=1, max_batches=8, target_seconds=5)
    assert len(four) == 4
    capped = plan_batches(trials, folds=5, cores_per_batch=1, max_batches=3, target_seconds=0.5)
    assert len(capped) == 3


def test_batch_ids_are_deterministic() -> None:
    trials = expand_grid(grid_spec(GRID_MODELS))
    kwargs: dict[str, Any] = {"folds": 5, "cores_per_batch": 1, "max_batches": 4, "target_seconds": 1, "prefix": "r0"}
    first = plan_batches(trials, **kwargs)
    again = plan_batches(list(reversed(trials)), **kwargs)
    assert [b.to_dict() for b in first] == [b.to_dict() for b in again]
    assert all(re.fullmatch(r"r0-[0-9a-f]{10}", b.batch_id) for b in first)
    assert len({b.batch_id for b in first}) == len(first) == 4
    assert plan_batches(trials, **{**kwargs, "prefix": "r1"})[0].batch_id.startswith("r1-")


@pytest.mark.parametrize(("n_trials", "n_batches"), [(40, 8), (41, 8), (100, 7), (23, 5)])
def test_equal_trials_are_balanced(n_trials: int, n_batches: int) -> None:
    batches = plan_batches(short_trials(n_trials), folds=5, cores_per_batch=1, max_batches=n_batches, target_seconds=0.01)
    sizes = sorted(len(b.trials) for b in batches)
    assert sizes[-1] - sizes[0] <= 1
    seconds = [b.predicted_seconds for b in batches]
    per_batch = n_trials // n_batches
    assert max(seconds) / min(seconds) <= (per_batch + 1) / per_batch + 1e-9


def test_longest_first_keeps_mixed_batches_within_one_trial_of_each_other() -> None:
    import random

    rng = random.Random(0)
    trials = [make_trial("random_forest", {"n_estimators": rng.randint(10, 1000), "i": i}, 0) for i in range(60)]
    batches = plan_batches(trials, folds=5, cores_per_batch=1, max_batches=6, target_seconds=0.01)
    seconds = [b.predicted_seconds for b in batches]
    longest = max(predict_trial_seconds(t, 5) for t in trials)
    # LPT's guarantee: the heaviest batch exceeds the lightest by at most one trial.
    assert max(seconds) - min(seconds) <= longest
    total = sum(predict_trial_seconds(t, 5) for t in trials)
    assert max(seconds) <= total / 6 + longest


def test_a_long_trial_runs_alone_while_short_ones_share() -> None:
    long = make_trial("random_forest", {"n_estimators": 5000}, 0)  # 1.0 * 5 * 50 = 250 s
    trials = [long, *short_trials(30)]  # 30 * 0.5 s
    batches = plan_batches(trials, folds=5, cores_per_batch=1, max_batches=4, target_seconds=1)
    assert len(batches) == 4
    alone = [b for b in batches if long in b.trials]
    assert len(alone) == 1 and alone[0].trials == [long]
    others = [b for b in batches if long not in b.trials]
    assert sorted(len(b.trials) for b in others) == [10, 10, 10]
    assert math.isclose(alone[0].predicted_seconds, 250.0)


def test_planned_trials_carry_their_predicted_seconds() -> None:
    trials = [make_trial("random_forest", {"n_estimators": n}, 0) for n in (100, 300, 1000)]
    predictor = {t.trial_id: s for t, s in zip(trials, (1.0, 7.0, 2.5))}
    batches = plan_batches(trials, folds=4, cores_per_batch=1, max_batches=2, target_seconds=0.01,
                           predictor=lambda trial: predictor[trial.trial_id])
    planned = {t.trial_id: t.predicted_seconds for b in batches for t in b.trials}
    assert planned == {trials[0].trial_id: 4.0, trials[1].trial_id: 28.0, trials[2].trial_id: 10.0}
    # the heaviest trial alone, the two lighter ones together (longest first onto the lightest batch)
    assert sorted(b.predicted_seconds for b in batches) == [14.0, 28.0]
    payload = [t for b in batches for t in b.to_dict()["trials"]]
    assert {t["trial_id"]: t["predicted_seconds"] for t in payload} == planned


# --- a round's batches on one machine -------------------------------------------------------------


def round_spec(*, max_parallel: int, gpu_model: bool = False) -> Any:
    models: list[dict[str, Any]] = [{"type": "logistic_l1", "params": {"C": [float(c) for c in range(1, 41)]}}]
    if gpu_model:
        models.append({"type": "mlp", "params": {"alpha": [0.1, 0.01, 0.001, 0.0001]},
                       "resources": {"cpu": 4, "memory_gb": 16, "gpu": 1}})
    return parse_spec({
        "name": "cap", "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "models": models, "budget": {"max_parallel": max_parallel},
    })


@pytest.mark.parametrize(("cpu_count", "workers", "backend", "expected"), [
    (8, 2, "local", 4), (8, 3, "local", 2), (8, 8, "local", 1), (4, 16, "local", 1), (64, 1, "local", 6),
    (8, 2, "kubernetes", 6), (8, 2, "sagemaker", 6),
])
def test_a_local_round_never_runs_more_workers_than_the_machine_has_cores(
        cpu_count: int, workers: int, backend: str, expected: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfleet.config import Settings
    from mlfleet.fit_history import RuntimeModel
    from mlfleet.sweep.propose import plan_round

    monkeypatch.setattr(os, "cpu_count", lambda: cpu_count)
    settings = Settings(home=tmp_path, local_workers=workers, batch_target_seconds=0.001)
    spec = round_spec(max_parallel=6)
    batches = plan_round(spec, expand(spec), round_index=0, settings=settings, backend=backend, runtime=RuntimeModel())
    assert len(batches) == expected
    if backend == "local":
        assert len(batches) * workers <= max(cpu_count, workers)


def test_the_local_cap_holds_across_resource_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfleet.config import Settings
    from mlfleet.fit_history import RuntimeModel
    from mlfleet.sweep.propose import plan_round

    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    settings = Settings(home=tmp_path, local_workers=2, batch_target_seconds=0.001)
    spec = round_spec(max_parallel=16, gpu_model=True)
    local = plan_round(spec, expand(spec), round_index=0, settings=settings, backend="local", runtime=RuntimeModel())
    assert len(local) == 6  # 12 cores / 2 workers, shared 40:4 between the CPU and the GPU trials
    assert sorted(b["resources"]["gpu"] for b in local) == [0, 0, 0, 0, 0, 1]
    remote = plan_round(spec, expand(spec), round_index=0, settings=settings, backend="kubernetes", runtime=RuntimeModel())
    assert len(remote) == 16
