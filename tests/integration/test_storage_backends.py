"""mlfleet.tuning against every Optuna storage it is deployed on: the same contract, each backend.

SQLite is the embedded default; PostgreSQL is production's storage, because parallel Airflow
tasks ask and tell the same study at once. Both are real: a SQLite file and a PostgreSQL server
the `postgres_url` fixture starts. Study names are unique per test, since the PostgreSQL
database is shared by the session.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest

from mlfleet import tuning
from mlfleet.spec import parse_spec
from mlfleet.trials import expand_grid

pytestmark = pytest.mark.slow

State = optuna.trial.TrialState

# Two models; int, float, log-int, log-float ranges, categorical choices (incl. None) and a fixed scalar.
BAYES_MODELS: list[dict[str, Any]] = [
    {"type": "xgboost", "params": {
        "max_depth": {"int": [2, 8]},
        "learning_rate": {"float": [0.01, 0.3], "log": True},
        "subsample": {"float": [0.5, 1.0]},
        "booster": ["gbtree", "dart"],
        "n_estimators": 50,
    }},
    {"type": "random_forest", "params": {
        "n_estimators": {"int": [10, 300], "log": True},
        "max_features": ["sqrt", "log2", None],
        "min_samples_leaf": {"float": [0.01, 0.2]},
    }},
]

GRID_MODELS: list[dict[str, Any]] = [
    {"type": "xgboost", "params": {"max_depth": [2, 3, 9], "booster": ["gbtree"]}},
    {"type": "random_forest", "params": {"max_features": ["sqrt", None]}},
]


def spec_dict(models: list[dict[str, Any]], *, strategy: str = "bayes") -> dict[str, Any]:
    search = {"strategy": strategy, **({"n_trials": 8, "batch_size": 4} if strategy != "grid" else {})}
    return {"name": "tune", "task": "classification", "target": "target", "metric": "roc_auc",
            "dataset": {"builtin": "breast_cancer"}, "search": search, "models": models}


def spec_of(models: list[dict[str, Any]], *, strategy: str = "bayes") -> Any:
    return parse_spec(spec_dict(models, strategy=strategy))


@pytest.fixture(params=["journal", "sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "journal":  # the local default
        return str(tmp_path / "optuna.journal")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def name() -> Any:
    """Study names unique to this test (the PostgreSQL database outlives a test)."""
    suffix = uuid.uuid4().hex[:10]
    return lambda base: f"{base}-{suffix}"


def success(trials: list[Any], base: float = 0.5) -> list[dict[str, Any]]:
    return [{"trial_id": t.trial_id, "status": "success", "mean_score": base + i / 100} for i, t in enumerate(trials)]


def assert_inside_space(trial: Any, spec: Any) -> None:
    entry = spec.models[trial.model_index]
    assert trial.model == entry.type
    p = trial.params
    assert set(p) == set(entry.params)
    if trial.model == "xgboost":
        assert isinstance(p["max_depth"], int) and 2 <= p["max_depth"] <= 8
        assert isinstance(p["learning_rate"], float) and 0.01 <= p["learning_rate"] <= 0.3
        assert 0.5 <= p["subsample"] <= 1.0
        assert p["booster"] in ("gbtree", "dart")
        assert p["n_estimators"] == 50
    else:
        assert isinstance(p["n_estimators"], int) and 10 <= p["n_estimators"] <= 300
        assert p["max_features"] in ("sqrt", "log2", None)
        assert 0.01 <= p["min_samples_leaf"] <= 0.2


def test_open_study_twice_gives_the_same_study(storage: str, name: Any) -> None:
    first = tuning.open_study(storage=storage, name=name("s"), seed=0)
    second = tuning.open_study(storage=storage, name=name("s"), seed=1)  # load_if_exists
    assert first._study_id == second._study_id
    assert second.direction == optuna.study.StudyDirection.MAXIMIZE
    assert optuna.get_all_study_names(tuning.study_storage(storage)).count(name("s")) == 1
    asked = tuning.ask(first, spec_of(BAYES_MODELS), 1)
    assert [t.number for t in second.get_trials()] == [asked[0].optuna_number]


def test_ask_gives_params_inside_the_space(storage: str, name: Any) -> None:
    spec = spec_of(BAYES_MODELS)
    study = tuning.open_study(storage=storage, name=name("s"), seed=0)
    trials = tuning.ask(study, spec, 10)
    assert [t.optuna_number for t in trials] == list(range(10))
    for t in trials:
        assert_inside_space(t, spec)
    assert {t.model for t in trials} == {"xgboost", "random_forest"}
    # the storage holds them as RUNNING, under `<model index>.<param>`, inside Optuna's distributions
    dists = tuning.distributions(spec)
    stored = tuning.load_study(storage=storage, name=name("s")).get_trials()
    assert [t.state for t in stored] == [State.RUNNING] * 10
    for ours, theirs in zip(trials, stored):
        assert theirs.params["model"] == ours.model_index
        assert all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in theirs.params.items())


def test_tell_is_idempotent(storage: str, name: Any) -> None:
    spec = spec_of(BAYES_MODELS)
    study = tuning.open_study(storage=storage, name=name("s"), seed=0)
    trials = tuning.ask(study, spec, 4)
    assert len({t.trial_id for t in trials}) == 4  # float params: no repeated proposal
    rows = success(trials[:3]) + [{"trial_id": trials[3].trial_id, "status": "failed", "mean_score": None}]
    assert tuning.tell(study, rows, trials) == 4
    assert tuning.tell(study, rows, trials) == 0
    # a retried task opens the study afresh: still nothing to tell
    assert tuning.tell(tuning.open_study(storage=storage, name=name("s"), seed=0), rows, trials) == 0
    by_number = {t.number: t for t in tuning.load_study(storage=storage, name=name("s")).get_trials()}
    assert len(by_number) == 4
    for t, row in zip(trials[:3], rows):
        assert by_number[t.optuna_number].state == State.COMPLETE
        assert by_number[t.optuna_number].value == pytest.approx(row["mean_score"])
    assert by_number[trials[3].optuna_number].state == State.FAIL
    # the next round continues the numbering and learns from the told trials
    more = tuning.ask(tuning.open_study(storage=storage, name=name("s"), seed=0), spec, 2)
    assert [t.optuna_number for t in more] == [4, 5]
    assert study.best_value == pytest.approx(0.52)


def _key(t: Any) -> str:
    return repr(sorted(t.params.items(), key=lambda kv: kv[0]))


def test_warm_start_copies_compatible_trials_once(storage: str, name: Any) -> None:
    spec = spec_of(BAYES_MODELS)
    source = tuning.open_study(storage=storage, name=name("source"), seed=0)
    done = tuning.ask(source, spec, 8)
    tuning.tell(source, success(done), done)
    failed = tuning.ask(source, spec, 1)
    tuning.tell(source, [], failed)  # a FAIL is never copied

    target = tuning.open_study(storage=storage, name=name("target"), seed=0)
    assert tuning.warm_start(target, source=source, spec=spec) == 8
    assert tuning.warm_start(target, source=source, spec=spec) == 0
    reopened = tuning.open_study(storage=storage, name=name("target"), seed=0)
    assert tuning.warm_start(reopened, source=source, spec=spec) == 0  # a retried task
    copied = tuning.load_study(storage=storage, name=name("target")).get_trials()
    complete = source.get_trials(states=(State.COMPLETE,))
    assert all(t.state == State.COMPLETE for t in copied)
    assert sorted(map(_key, copied)) == sorted(map(_key, complete))
    assert sorted(t.value for t in copied) == pytest.approx(sorted(t.value for t in complete))
    more = tuning.ask(reopened, spec, 2)
    assert [t.optuna_number for t in more] == [8, 9]

    # a narrower space (xgboost only, max_depth <= 5) takes only the trials that fit it
    narrow_models = [{**BAYES_MODELS[0], "params": {**BAYES_MODELS[0]["params"], "max_depth": {"int": [2, 5]}}}]
    fits = [t for t in complete if t.params["model"] == 0 and t.params["0.max_depth"] <= 5]
    narrow = tuning.open_study(storage=storage, name=name("narrow"), seed=0)
    assert tuning.warm_start(narrow, source=source, spec=spec_of(narrow_models)) == len(fits)
    assert sorted(map(_key, narrow.get_trials())) == sorted(map(_key, fits))


def test_record_trials_of_a_grid(storage: str, name: Any) -> None:
    grid = spec_of(GRID_MODELS, strategy="grid")
    trials = expand_grid(grid)
    assert len(trials) == 5
    rows = success(trials)
    rows[-1] = {**rows[-1], "status": "failed", "mean_score": None}
    study = tuning.open_study(storage=storage, name=name("grid"), seed=0)
    assert tuning.record_trials(study, grid, rows, trials) == 4
    assert tuning.record_trials(study, grid, rows, trials) == 0
    again = tuning.open_study(storage=storage, name=name("grid"), seed=0)
    assert tuning.record_trials(again, grid, rows, trials) == 0
    recorded = tuning.load_study(storage=storage, name=name("grid")).get_trials()
    assert len(recorded) == 4 and all(t.state == State.COMPLETE for t in recorded)
    by_value = {round(t.value, 6): t.params for t in recorded}
    for row, trial in zip(rows[:-1], trials[:-1]):
        params = by_value[round(row["mean_score"], 6)]
        assert params["model"] == trial.model_index
        assert {k.split(".", 1)[1]: v for k, v in params.items() if k != "model"} == trial.params

    # the recorded grid warm-starts a bayes study (max_depth 9 is outside [2, 8])
    target = tuning.open_study(storage=storage, name=name("bayes"), seed=0)
    copied = tuning.warm_start(target, source=again, spec=spec_of(BAYES_MODELS))
    expected = [t for t in trials[:-1] if t.model != "xgboost" or t.params["max_depth"] <= 8]
    assert copied == len(expected)


@pytest.fixture(scope="module")
def workers() -> Iterator[ProcessPoolExecutor]:
    """Two spawned worker processes sharing a barrier, reused by every backend's concurrency test."""
    from services import init_worker

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=init_worker,
                             initargs=(ctx.Barrier(2),)) as pool:
        yield pool


def test_two_processes_ask_the_same_study_concurrently(storage: str, name: Any, workers: ProcessPoolExecutor) -> None:
    """Two processes create/open one study at the same moment, ask 5 trials each, and tell them."""
    from services import ask_in_worker

    # Optuna creates its tables on first use and that is not safe to race (optuna/optuna#1092:
    # "table studies already exists"): the storage is initialised once, as a deployment does,
    # before the workers race on the study itself. A journal file has no tables to create.
    if "://" in storage:
        optuna.storages.RDBStorage(storage)
    n = 5
    futures = [workers.submit(ask_in_worker, storage, name("shared"), spec_dict(BAYES_MODELS), n, seed)
               for seed in (1, 2)]
    outcomes = [f.result(timeout=120) for f in futures]
    pids = {pid for pid, _, _ in outcomes}
    assert len(pids) == 2 and os.getpid() not in pids  # two separate processes did the work
    numbers = [ns for _, ns, _ in outcomes]
    assert all(len(ns) == n for ns in numbers) and all(told == n for _, _, told in outcomes)
    assert not set(numbers[0]) & set(numbers[1])  # distinct trial numbers across processes
    assert sorted(numbers[0] + numbers[1]) == list(range(2 * n))
    assert optuna.get_all_study_names(tuning.study_storage(storage)).count(name("shared")) == 1  # the creation race made one study
    stored = tuning.load_study(storage=storage, name=name("shared")).get_trials()
    assert len(stored) == 2 * n and all(t.state == State.COMPLETE for t in stored)


def test_two_record_tasks_racing_tell_each_trial_once(storage: str, name: Any, workers: ProcessPoolExecutor) -> None:
    """A retried `record` beside the attempt it replaces (or two rounds' records): both tell the same
    finished trials at the same moment. Each trial is told once, by one of them, and neither fails."""
    from services import tell_in_worker

    if "://" in storage:
        optuna.storages.RDBStorage(storage)  # the tables exist before the race (see above)
    study = tuning.open_study(storage=storage, name=name("record"), seed=0)
    trials = tuning.ask(study, spec_of(BAYES_MODELS), 6)
    rows = success(trials)
    futures = [workers.submit(tell_in_worker, storage, name("record"), rows, [t.to_dict() for t in trials])
               for _ in range(2)]
    outcomes = [f.result(timeout=120) for f in futures]
    assert len({pid for pid, _ in outcomes}) == 2
    assert sum(told for _, told in outcomes) == 6  # each trial told by exactly one of the two
    stored = tuning.load_study(storage=storage, name=name("record")).get_trials()
    assert [(t.state, t.value) for t in stored] == [(State.COMPLETE, r["mean_score"]) for r in rows]
