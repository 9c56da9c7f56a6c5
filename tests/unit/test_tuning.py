"""Bayesian optimisation with Optuna: ask/tell, warm starts and recording grid sweeps (the journal file, the local default)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from mlfleet import tuning
from mlfleet.spec import parse_spec
from mlfleet.trials import expand_grid

State = optuna.trial.TrialState


def spec_of(models: list[dict[str, Any]], *, strategy: str = "bayes", n_trials: int = 8) -> Any:
    search = {"strategy": strategy, **({"n_trials": n_trials, "batch_size": 4} if strategy != "grid" else {})}
    return parse_spec({"name": "tune", "task": "classification", "target": "target", "metric": "roc_auc",
                       "dataset": {"builtin": "breast_cancer"}, "search": search, "models": models})


BAYES = [
    {"type": "xgboost", "params": {
        "max_depth": {"int": [2, 8]},
        "learning_rate": {"float": [0.01, 0.3], "log": True},
        "booster": ["gbtree", "dart"],
        "n_estimators": 50,
    }},
    {"type": "random_forest", "params": {"max_depth": {"int": [2, 12]}, "max_features": ["sqrt", "log2", None]}},
]


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return str(tmp_path / "optuna.journal")  # the local default (the database URLs: test_storage_backends)


def success(trials: list[Any], base: float = 0.5) -> list[dict[str, Any]]:
    return [{"trial_id": t.trial_id, "status": "success", "mean_score": base + i / 100} for i, t in enumerate(trials)]


def test_ask_proposes_n_trials_inside_the_space(storage: str) -> None:
    spec = spec_of(BAYES)
    study = tuning.open_study(storage=storage, name="s", seed=0)
    trials = tuning.ask(study, spec, 12)
    assert len(trials) == len({t.trial_id for t in trials}) == 12  # twelve distinct configurations
    numbers = [t.optuna_number for t in trials]
    assert numbers == sorted(set(numbers))  # in the order asked (a repeat, told FAIL, leaves a gap)
    for t in trials:
        assert t.model == spec.models[t.model_index].type
        p = t.params
        if t.model == "xgboost":
            assert set(p) == {"max_depth", "learning_rate", "booster", "n_estimators"}
            assert isinstance(p["max_depth"], int) and 2 <= p["max_depth"] <= 8
            assert 0.01 <= p["learning_rate"] <= 0.3
            assert p["booster"] in ("gbtree", "dart")
            assert p["n_estimators"] == 50
        else:
            assert set(p) == {"max_depth", "max_features"}
            assert 2 <= p["max_depth"] <= 12
            assert p["max_features"] in ("sqrt", "log2", None)
    assert {t.model for t in trials} == {"xgboost", "random_forest"}
    running = study.get_trials(states=(State.RUNNING,))
    assert len(running) == 12
    # Optuna holds the same params under `<model index>.<param>`
    first = running[0]
    assert first.params["model"] == trials[0].model_index
    assert {k.split(".", 1)[1] for k in first.params if k != "model"} <= set(trials[0].params)


def test_ask_decodes_structured_choices(storage: str) -> None:
    spec = spec_of([{"type": "mlp", "params": {"hidden_units": [[64, 32], [16]], "epochs": 3}}])
    trials = tuning.ask(tuning.open_study(storage=storage, name="s", seed=1), spec, 6)
    assert all(t.params["hidden_units"] in ([64, 32], [16]) for t in trials)


def test_tell_is_idempotent_and_marks_failures(storage: str) -> None:
    spec = spec_of(BAYES)
    study = tuning.open_study(storage=storage, name="s", seed=0)
    trials = tuning.ask(study, spec, 4)
    # a repeated proposal would share its row: the xgboost ranges are continuous, so none repeat here
    assert len({t.trial_id for t in trials}) == 4
    rows = success(trials[:3]) + [{"trial_id": trials[3].trial_id, "status": "failed", "mean_score": None, "error": "boom"}]
    assert tuning.tell(study, rows, trials) == 4
    assert tuning.tell(study, rows, trials) == 0
    reloaded = tuning.load_study(storage=storage, name="s")
    by_number = {t.number: t for t in reloaded.get_trials()}
    by_id = {r["trial_id"]: r for r in rows}
    for t in trials[:3]:
        assert by_number[t.optuna_number].state == State.COMPLETE
        assert by_number[t.optuna_number].value == pytest.approx(by_id[t.trial_id]["mean_score"])
    assert by_number[trials[3].optuna_number].state == State.FAIL
    assert by_number[trials[3].optuna_number].value is None


def test_a_trial_stopped_across_folds_is_told_as_pruned(storage: str) -> None:
    study = tuning.open_study(storage=storage, name="s", seed=0)
    trials = tuning.ask(study, spec_of(BAYES), 2)
    rows = [{**row, "pruned": index == 1} for index, row in enumerate(success(trials))]
    assert tuning.tell(study, rows, trials) == 2
    assert [t.state for t in study.get_trials()] == [State.COMPLETE, State.PRUNED]


def test_tell_marks_a_trial_without_a_row_failed(storage: str) -> None:
    study = tuning.open_study(storage=storage, name="s", seed=0)
    trials = tuning.ask(study, spec_of(BAYES), 2)
    assert tuning.tell(study, [], trials) == 2
    assert [t.state for t in study.get_trials()] == [State.FAIL, State.FAIL]


def test_tell_skips_trials_optuna_did_not_propose(storage: str) -> None:
    study = tuning.open_study(storage=storage, name="s", seed=0)
    grid = expand_grid(spec_of([{"type": "logistic_l1", "params": {"C": [1, 2]}}], strategy="grid"))
    assert tuning.tell(study, success(grid), grid) == 0
    assert study.get_trials() == []


def test_a_retried_ask_takes_the_trials_a_dead_attempt_asked(storage: str) -> None:
    """An attempt asked 3 trials and died before writing its round: the retry of a 2-trial round
    runs two of them (same params, same numbers) and fails the third; nothing stays RUNNING."""
    spec = spec_of(BAYES)
    lost = tuning.ask(tuning.open_study(storage=storage, name="s", seed=0), spec, 3)
    study = tuning.open_study(storage=storage, name="s", seed=0)
    retried = tuning.ask(study, spec, 2, known=set())
    assert [(t.optuna_number, t.trial_id, t.params) for t in retried] == [(t.optuna_number, t.trial_id, t.params) for t in lost[:2]]
    assert [t.state for t in study.get_trials()] == [State.RUNNING, State.RUNNING, State.FAIL]
    # trials a round already holds are not taken again: the next round asks new ones
    tuning.tell(study, success(retried), retried)
    following = tuning.ask(study, spec, 2, known={0, 1})
    assert [t.optuna_number for t in following] == [3, 4]


def test_a_trial_killed_while_its_params_were_sampled_is_failed(storage: str) -> None:
    spec = spec_of(BAYES)
    study = tuning.open_study(storage=storage, name="s", seed=0)
    study.ask({"model": tuning.distributions(spec)["model"]})  # the model chosen, its params never sampled
    retried = tuning.ask(study, spec, 1, known=set())
    assert [t.optuna_number for t in retried] == [1]
    assert [t.state for t in study.get_trials()] == [State.FAIL, State.RUNNING]


def test_next_round_learns_from_told_trials(storage: str) -> None:
    spec = spec_of(BAYES)
    study = tuning.open_study(storage=storage, name="s", seed=0)
    first = tuning.ask(study, spec, 4)
    tuning.tell(study, success(first), first)
    second = tuning.ask(tuning.open_study(storage=storage, name="s", seed=0), spec, 4)
    assert [t.optuna_number for t in second] == [4, 5, 6, 7]
    assert study.best_value == pytest.approx(0.53)


def complete_source(storage: str, spec: Any, n: int) -> Any:
    source = tuning.open_study(storage=storage, name="source", seed=0)
    trials = tuning.ask(source, spec, n)
    tuning.tell(source, success(trials), trials)
    return source


def test_warm_start_copies_compatible_trials_once(storage: str) -> None:
    spec = spec_of(BAYES)
    source = complete_source(storage, spec, 6)
    # one failed trial in the source is never copied
    failed = tuning.ask(source, spec, 1)
    tuning.tell(source, [], failed)
    target = tuning.open_study(storage=storage, name="target", seed=0)
    assert tuning.warm_start(target, source=source, spec=spec) == 6
    assert tuning.warm_start(target, source=source, spec=spec) == 0
    copied = target.get_trials()
    assert len(copied) == 6
    assert sorted(t.value for t in copied) == pytest.approx([0.5 + i / 100 for i in range(6)])
    done = [t for t in source.get_trials() if t.state == State.COMPLETE]
    assert sorted(map(_key, copied)) == sorted(map(_key, done))
    # the warm study keeps asking inside the space
    more = tuning.ask(target, spec, 2)
    assert [t.optuna_number for t in more] == [6, 7]


def _key(t: Any) -> str:
    return repr(sorted(t.params.items(), key=lambda kv: kv[0]))


def test_warm_start_skips_incompatible_trials(storage: str) -> None:
    spec = spec_of(BAYES)
    source = complete_source(storage, spec, 10)
    # a narrower space with the xgboost model only: forest trials and deep xgboost trials do not fit
    narrow = spec_of([{**BAYES[0], "params": {**BAYES[0]["params"], "max_depth": {"int": [2, 5]}}}])
    fits = [t for t in source.get_trials() if t.params["model"] == 0 and t.params["0.max_depth"] <= 5]
    target = tuning.open_study(storage=storage, name="target", seed=0)
    assert tuning.warm_start(target, source=source, spec=narrow) == len(fits)
    copied = target.get_trials()
    assert sorted(map(_key, copied)) == sorted(map(_key, fits))
    assert all(t.params["0.max_depth"] <= 5 and t.params["model"] == 0 for t in copied)


def test_record_trials_of_a_grid_with_shared_param_names(storage: str) -> None:
    # Regression: many trials share `<i>.<param>` names; each must carry the same distribution
    # or Optuna raises "CategoricalDistribution does not support dynamic value space".
    spec = spec_of([
        {"type": "xgboost", "params": {"max_depth": [2, 3, 4, 5], "learning_rate": [0.05, 0.1, 0.2]}},
        {"type": "random_forest", "params": {"n_estimators": [100, 300], "max_depth": [None, 10]}},
        {"type": "logistic_l1", "params": {"C": [0.01, 0.1, 1, 10, 100]}},
    ], strategy="grid")
    trials = expand_grid(spec)
    assert len(trials) == 21
    rows = success(trials)
    rows[-1] = {**rows[-1], "status": "failed", "mean_score": None}
    study = tuning.open_study(storage=storage, name="grid", seed=0)
    assert tuning.record_trials(study, spec, rows, trials) == 20
    assert tuning.record_trials(study, spec, rows, trials) == 0
    recorded = tuning.load_study(storage=storage, name="grid").get_trials()
    assert len(recorded) == 20 and all(t.state == State.COMPLETE for t in recorded)
    by_value = {round(t.value, 6): t.params for t in recorded}
    for row, trial in zip(rows[:-1], trials[:-1]):
        params = by_value[round(row["mean_score"], 6)]
        assert params["model"] == trial.model_index
        assert {k.split(".", 1)[1]: v for k, v in params.items() if k != "model"} == trial.params


def test_grid_record_warm_starts_a_bayes_study(storage: str) -> None:
    grid = spec_of([{"type": "xgboost", "params": {"max_depth": [2, 3, 9], "booster": ["gbtree"]}}], strategy="grid")
    trials = expand_grid(grid)
    recorded = tuning.open_study(storage=storage, name="grid", seed=0)
    assert tuning.record_trials(recorded, grid, success(trials), trials) == 3
    bayes = spec_of([{"type": "xgboost", "params": {"max_depth": {"int": [2, 8]}, "booster": ["gbtree", "dart"]}}])
    target = tuning.open_study(storage=storage, name="bayes", seed=0)
    assert tuning.warm_start(target, source=recorded, spec=bayes) == 2  # max_depth 9 is outside [2, 8]
    assert sorted(t.params["0.max_depth"] for t in target.get_trials()) == [2, 3]
    asked = tuning.ask(target, bayes, 3)
    assert all(2 <= t.params["max_depth"] <= 8 for t in asked)


def test_distributions_cover_every_searchable_param() -> None:
    dists = tuning.distributions(spec_of(BAYES))
    assert set(dists) == {"model", "0.max_depth", "0.learning_rate", "0.booster", "1.max_depth", "1.max_features"}
    assert dists["0.max_depth"] == optuna.distributions.IntDistribution(2, 8)
    lr = dists["0.learning_rate"]
    assert (lr.low, lr.high, lr.log) == (0.01, 0.3, True)
    assert dists["model"].choices == (0, 1)
    assert math.isclose(dists["0.learning_rate"].high, 0.3)


def test_asking_more_than_the_space_holds_gives_each_configuration_once(storage: str) -> None:
    # Two choices, five asks: TPE repeats itself; each repeat is told FAIL and asked again, and the
    # ask stops when nothing is left untried.
    spec = spec_of([{"type": "logistic_l1", "params": {"C": [0.1, 1.0]}}])
    study = tuning.open_study(storage=storage, name="s", seed=0)
    trials = tuning.ask(study, spec, 5)
    assert sorted(t.params["C"] for t in trials) == [0.1, 1.0]
    ids = {t.trial_id for t in trials}
    assert {t.number for t in study.get_trials(states=(State.RUNNING,))} == {t.optuna_number for t in trials}
    assert all(r.user_attrs["duplicate_of"] in ids for r in study.get_trials(states=(State.FAIL,)))
    rows = [{"trial_id": t.trial_id, "status": "success", "mean_score": 0.6} for t in trials]
    assert tuning.tell(study, rows, trials) == 2
    assert tuning.ask(study, spec, 3, tried=ids) == []  # nothing left: no trial asked, none left RUNNING
    assert not study.get_trials(states=(State.RUNNING,))


def test_a_later_round_asks_only_configurations_not_tried(storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of([{"type": "logistic_l1", "params": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}}])
    study = tuning.open_study(storage=storage, name="s", seed=0)
    first = tuning.ask(study, spec, 2)
    tuning.tell(study, success(first), first)
    tried = {t.trial_id for t in first}
    second = tuning.ask(tuning.open_study(storage=storage, name="s", seed=1), spec, 2, tried=tried)
    assert len(second) == 2 and not tried & {t.trial_id for t in second}
    # A sampler stuck on tried configurations: the first untried one, in the spec's order, is queued and asked.
    monkeypatch.setattr(tuning, "ASK_ATTEMPTS", 0)
    tried |= {t.trial_id for t in second}
    third = tuning.ask(study, spec, 5, tried=tried)
    left = [c for c in (0.01, 0.1, 1.0, 10.0, 100.0) if c not in {t.params["C"] for t in [*first, *second]}]
    assert [t.params["C"] for t in third] == left
    assert all(study.get_trials()[t.optuna_number].params["0.C"] == t.params["C"] for t in third)


def test_with_the_finite_models_all_tried_a_float_range_still_gives_new_trials(
        storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = {"type": "random_forest", "params": {"n_estimators": [100, 300], "max_depth": [None, 8]}}
    spec = spec_of([grid, {"type": "lightgbm", "params": {"learning_rate": {"float": [0.01, 0.3], "log": True}}}],
                   n_trials=20)
    tried = {t.trial_id for t in expand_grid(spec_of([grid], strategy="grid"))}
    monkeypatch.setattr(tuning, "ASK_ATTEMPTS", 0)  # as if the sampler kept proposing random forests
    trials = tuning.ask(tuning.open_study(storage=storage, name="s", seed=0), spec, 3, tried=tried)
    assert [t.model for t in trials] == ["lightgbm"] * 3 and len({t.trial_id for t in trials}) == 3


def test_a_value_fits_a_distribution_by_its_public_fields() -> None:
    D = optuna.distributions
    stepped = D.IntDistribution(2, 8, step=2)
    assert [v for v in range(0, 11) if tuning._fits(stepped, v)] == [2, 4, 6, 8]
    quarters = D.FloatDistribution(0.0, 1.0, step=0.25)
    assert [tuning._fits(quarters, v) for v in (0.0, 0.5, 0.75 + 1e-12, 0.6, 1.25)] == [True, True, True, False, False]
    logged = D.FloatDistribution(0.01, 0.3, log=True)
    assert [tuning._fits(logged, v) for v in (0.01, 0.3, 0.0, -1.0, 0.31, "x", None)] == \
        [True, True, False, False, False, False, False]
    choices = D.CategoricalDistribution(["gbtree", "dart", None])
    assert [tuning._fits(choices, v) for v in ("dart", None, "gblinear", 3)] == [True, True, False, False]


def test_telling_a_trial_another_study_handle_finished_counts_nothing(storage: str) -> None:
    spec = spec_of(BAYES)
    study = tuning.open_study(storage=storage, name="s", seed=0)
    (trial,) = tuning.ask(study, spec, 1)
    other = tuning.open_study(storage=storage, name="s", seed=0)  # a retried task racing the attempt it replaces
    assert tuning.tell(other, success([trial]), [trial]) == 1
    assert tuning._tell_once(study, trial.optuna_number, 0.9) == 0  # Optuna refuses it: another teller won
    assert tuning.load_study(storage=storage, name="s").get_trials()[trial.optuna_number].value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="has not been created"):  # any other refusal is raised as it is
        tuning._tell_once(study, 99, 0.9)


def test_tells_on_a_sqlite_storage_take_the_lock_beside_the_database(tmp_path: Path) -> None:
    database = tmp_path / "optuna.db"
    url = f"sqlite:///{database}"
    lock = tmp_path / "optuna.db.tell.lock"
    spec = spec_of(BAYES)
    # A study opened without mlfleet.tuning: its storage is unknown here, so no lock is taken.
    foreign = optuna.create_study(storage=url, study_name="foreign", direction="maximize")
    trials = tuning.ask(foreign, spec, 1)
    assert tuning.tell(foreign, success(trials), trials) == 1 and not lock.exists()
    for study in (tuning.open_study(storage=url, name="s", seed=0), tuning.load_study(storage=url, name="s")):
        trials = tuning.ask(study, spec, 1)
        assert tuning.tell(study, success(trials), trials) == 1
        assert lock.exists()
        lock.unlink()
