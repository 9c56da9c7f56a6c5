"""Bayesian optimisation with Optuna: ask/tell in rounds, the study in Optuna's journal file (or a database).

A round asks `batch_size` trials at once (TPE with the constant liar, so parallel asks spread
out), the batches run as mapped tasks, and the next round tells Optuna their scores. Parameter
names are `<model index>.<param>`, with a `model` choice on top, so one study spans every model
of a spec.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from pathlib import Path
from typing import Any, Iterator

from mlfleet.spec import ExperimentSpec, Range, param_domain
from mlfleet.trials import Trial, configurations, make_trial, model_space_size

_CATEGORICAL_TYPES = (type(None), bool, int, float, str)
# The storage location each study was opened with (`open_study`, `load_study`): Optuna's Study does
# not say which storage it is in, and `tell` takes a file lock beside a SQLite database.
_LOCATIONS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_storage(location: str | None) -> Any:
    """Optuna's storage for `settings.optuna_storage`: a database URL (`sqlite:///`, `postgresql://`)
    as RDB storage, anything else as the path of a journal file (Optuna's file lock guards it
    across the processes of one machine); None keeps the study in memory (`mlfleet plan`)."""
    optuna = _optuna()
    if location is None:
        return None
    if "://" in location:
        return location
    from optuna.storages.journal import JournalFileBackend

    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(location))


def load_study(*, storage: str, name: str) -> Any:
    study = _optuna().load_study(study_name=name, storage=study_storage(storage))
    _LOCATIONS[study] = storage
    return study


def open_study(*, storage: str | None, name: str, seed: int) -> Any:
    """Create or load a study; direction is maximise (scikit-learn scorers are higher-is-better)."""
    from sqlalchemy.exc import SQLAlchemyError
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

    optuna = _optuna()
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=4)
    # Two processes creating a new storage's tables (or one study) at once: one wins, the other
    # retries and loads (optuna/optuna#1092). Three attempts, 0.5 s then 1 s apart; the last error raises.
    retrying = Retrying(retry=retry_if_exception_type(SQLAlchemyError), stop=stop_after_attempt(3),
                        wait=wait_incrementing(start=0.5, increment=0.5), reraise=True)
    study = retrying(optuna.create_study, storage=study_storage(storage), study_name=name, direction="maximize",
                     sampler=sampler, load_if_exists=True)
    if storage is not None:
        _LOCATIONS[study] = storage
    return study


def distributions(spec: ExperimentSpec) -> dict[str, Any]:
    """Optuna distributions of every searchable parameter (fixed scalars are not searched)."""
    optuna = _optuna()
    dists: dict[str, Any] = {"model": optuna.distributions.CategoricalDistribution(list(range(len(spec.models))))}
    for i, entry in enumerate(spec.models):
        for key, raw in entry.params.items():
            domain = param_domain(raw)
            name = f"{i}.{key}"
            if isinstance(domain, Range):
                if domain.kind == "int":
                    dists[name] = optuna.distributions.IntDistribution(int(domain.low), int(domain.high), log=domain.log)
                else:
                    dists[name] = optuna.distributions.FloatDistribution(domain.low, domain.high, log=domain.log)
            elif isinstance(domain, list):
                dists[name] = optuna.distributions.CategoricalDistribution([_encode(v) for v in domain])
    return dists


def _encode(value: Any) -> Any:
    return value if isinstance(value, _CATEGORICAL_TYPES) else json.dumps(value)


def _decode(value: Any, choices: list[Any]) -> Any:
    for choice in choices:
        if _encode(choice) == value:
            return choice
    return value


# Asks for one new trial before a configuration not yet tried is queued instead (Optuna's
# `enqueue_trial`): a sampler that has found its best region keeps proposing it.
ASK_ATTEMPTS = 10


def ask(study: Any, spec: ExperimentSpec, n: int, *, known: set[int] | None = None,
        tried: set[str] | None = None) -> list[Trial]:
    """`n` trials to run, each a configuration not in `tried` (trial ids) nor asked twice; a
    trial's params are the chosen model's params only.

    A proposal that repeats a configuration is told FAIL (user attr `duplicate_of`) and asked again,
    up to `ASK_ATTEMPTS` times; then the first untried configuration of the spec's finite models is
    queued and asked (or, with those all tried, a model with a float range). Fewer than `n` come
    back only when the space has no configuration left.

    With `known` (the Optuna numbers the sweep's rounds already hold), a RUNNING trial outside it
    was asked by an attempt that died before writing its round: it is taken again first (its params
    were sampled already), and one that cannot be (more than `n`, killed mid-sampling, or a repeat)
    is told FAIL, so no trial stays RUNNING and none is asked twice.
    """
    optuna = _optuna()
    dists = distributions(spec)
    seen = set(tried or ())
    trials: list[Trial] = []
    if known is not None:
        for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if frozen.number in known:
                continue
            adopted = _adopt(frozen, spec, dists) if len(trials) < n else None
            if adopted is None or adopted.trial_id in seen:
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            else:
                trials.append(adopted)
                seen.add(adopted.trial_id)
    while len(trials) < n:
        trial = _ask_untried(study, spec, dists, seen)
        if trial is None:
            break
        trials.append(trial)
        seen.add(trial.trial_id)
    return trials


def _ask_untried(study: Any, spec: ExperimentSpec, dists: dict[str, Any], seen: set[str]) -> Trial | None:
    """One asked trial whose configuration is not in `seen`, or None when the space has none left."""
    optuna = _optuna()
    for _ in range(ASK_ATTEMPTS):
        ot, trial = _ask_one(study, spec, dists)
        if trial.trial_id not in seen:
            return trial
        ot.set_user_attr("duplicate_of", trial.trial_id)
        study.tell(ot, state=optuna.trial.TrialState.FAIL)
    untried = next((t for t in configurations(spec) if t.trial_id not in seen), None)
    if untried is not None:
        study.enqueue_trial(_study_params(untried, dists))
        return _ask_one(study, spec, dists)[1]
    unbounded = [i for i, entry in enumerate(spec.models) if model_space_size(entry.params) is None]
    if not unbounded:
        return None
    study.enqueue_trial({"model": unbounded[0]})  # its float range gives a new configuration
    ot, trial = _ask_one(study, spec, dists)
    if trial.trial_id in seen:
        study.tell(ot, state=optuna.trial.TrialState.FAIL)
        return None
    return trial


def _ask_one(study: Any, spec: ExperimentSpec, dists: dict[str, Any]) -> tuple[Any, Trial]:
    ot = study.ask({"model": dists["model"]})
    index = ot.params["model"]
    entry = spec.models[index]
    params: dict[str, Any] = {}
    for key, raw in entry.params.items():
        name = f"{index}.{key}"
        if name in dists:
            value = _suggest(ot, name, dists[name])
            params[key] = _decode(value, raw) if isinstance(raw, list) else value
        else:
            params[key] = raw
    return ot, make_trial(entry.type, params, index, optuna_number=ot.number)


def _study_params(trial: Trial, dists: dict[str, Any]) -> dict[str, Any]:
    """A trial's params as the study names them (`model`, `<model index>.<param>`)."""
    params: dict[str, Any] = {"model": trial.model_index}
    for key, value in trial.params.items():
        name = f"{trial.model_index}.{key}"
        if name in dists:
            params[name] = _encode(value)
    return params


def _adopt(frozen: Any, spec: ExperimentSpec, dists: dict[str, Any]) -> Trial | None:
    """The mlfleet trial of an asked Optuna trial, or None if its params are incomplete."""
    index = frozen.params.get("model")
    if not isinstance(index, int) or not 0 <= index < len(spec.models):
        return None
    entry = spec.models[index]
    params: dict[str, Any] = {}
    for key, raw in entry.params.items():
        name = f"{index}.{key}"
        if name not in dists:
            params[key] = raw
        elif name not in frozen.params:
            return None
        else:
            params[key] = _decode(frozen.params[name], raw) if isinstance(raw, list) else frozen.params[name]
    return make_trial(entry.type, params, index, optuna_number=frozen.number)


def _suggest(ot: Any, name: str, dist: Any) -> Any:
    optuna = _optuna()
    if isinstance(dist, optuna.distributions.IntDistribution):
        return ot.suggest_int(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, optuna.distributions.FloatDistribution):
        return ot.suggest_float(name, dist.low, dist.high, log=dist.log)
    return ot.suggest_categorical(name, dist.choices)


def _fits(dist: Any, value: Any) -> bool:
    """Whether `value` is one `dist` can give, read off the distribution's public fields: a choice
    of a categorical, else a number in [low, high] on its step (Optuna's own test, as `create_trial`
    applies it: a step within 1e-8 for floats)."""
    optuna = _optuna()
    try:
        internal = dist.to_internal_repr(value)  # a categorical's index; raises for a value it does not hold
    except (ValueError, TypeError):
        return False
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return True
    if not dist.low <= internal <= dist.high:
        return False
    if isinstance(dist, optuna.distributions.IntDistribution):
        return (internal - dist.low) % dist.step == 0
    if dist.step is None:
        return True
    steps = (internal - dist.low) / dist.step
    return abs(steps - round(steps)) < 1e-8


def tell(study: Any, rows: list[dict[str, Any]], trials: list[Trial]) -> int:
    """Tell Optuna each finished trial's mean score (failed trials as FAIL, pruned ones as PRUNED); idempotent."""
    by_id = {r["trial_id"]: r for r in rows}
    with _sqlite_writer_lock(study):
        finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        told = _tell_unfinished(study, by_id, trials, finished)
    return told


def _tell_unfinished(study: Any, by_id: dict[str, dict[str, Any]], trials: list[Trial], finished: set[int]) -> int:
    optuna = _optuna()
    told = 0
    for trial in trials:
        if trial.optuna_number is None or trial.optuna_number in finished:
            continue
        row = by_id.get(trial.trial_id)
        if row and row["status"] == "success" and row.get("pruned"):
            # Stopped early across folds: its mean covers fewer folds, so it is not a complete value.
            told += _tell_once(study, trial.optuna_number, state=optuna.trial.TrialState.PRUNED)
        elif row and row["status"] == "success":
            told += _tell_once(study, trial.optuna_number, row["mean_score"])
        else:
            told += _tell_once(study, trial.optuna_number, state=optuna.trial.TrialState.FAIL)
    return told


@contextlib.contextmanager
def _sqlite_writer_lock(study: Any) -> Iterator[None]:
    """SQLite ignores SELECT ... FOR UPDATE, so two processes telling one trial would both succeed
    (found by the racing-record test): on a SQLite storage, tells take a file lock beside the
    database. PostgreSQL locks the row, and Optuna's journal file has its own lock.

    The storage is the one `open_study` or `load_study` opened the study with; a study opened
    some other way is told without the lock."""
    url = _LOCATIONS.get(study, "")
    if not url.startswith("sqlite:///"):
        yield
        return
    import fcntl

    with open(f"{url.removeprefix('sqlite:///')}.tell.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _tell_once(study: Any, number: int, value: float | None = None, state: Any = None) -> int:
    """Tell one trial; 0 if another teller (a retried `record` racing the attempt it replaces)
    finished it first. The storage takes one update per trial (PostgreSQL locks the row): the loser
    gets UpdateFinishedTrialError, or ValueError when it read the trial after the winner's commit."""
    optuna = _optuna()
    try:
        study.tell(number, value, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        return 0
    except ValueError:
        # `get_trials` reads again from the storage the trials this process last saw unfinished.
        if not any(t.number == number and t.state.is_finished() for t in study.get_trials(deepcopy=False)):
            raise
        return 0
    return 1


def warm_start(study: Any, *, source: Any, spec: ExperimentSpec) -> int:
    """Copy the source study's completed trials that fit this spec's space; returns how many."""
    optuna = _optuna()
    if study.get_trials(deepcopy=False):
        return 0  # already warm (a retried task): never copy twice
    dists = distributions(spec)
    added = 0
    for old in source.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        params = {k: v for k, v in old.params.items() if k in dists}
        if "model" not in params or not all(_fits(dists[k], v) for k, v in params.items()):
            continue
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=old.value))
        added += 1
    return added


def record_trials(study: Any, spec: ExperimentSpec, rows: list[dict[str, Any]], trials: list[Trial]) -> int:
    """Record a grid/random sweep's finished trials in a study, so a later retrain can warm-start."""
    optuna = _optuna()
    if study.get_trials(deepcopy=False):
        return 0  # recorded by an earlier attempt
    dists = distributions(spec)
    by_id = {r["trial_id"]: r for r in rows}
    frozen = []
    for trial in trials:
        row = by_id.get(trial.trial_id)
        if not row or row["status"] != "success" or row.get("pruned"):  # a pruned mean covers fewer folds
            continue
        params = _study_params(trial, dists)
        frozen.append(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=row["mean_score"]))
    study.add_trials(frozen)
    return len(frozen)


def param_importances(study: Any, spec: ExperimentSpec) -> dict[str, dict[str, float]]:
    """How much each parameter explains of the score, per model type (Optuna's fANOVA evaluator).

    A study mixes model types whose parameters differ, and Optuna's evaluators only assess
    parameters every trial has: so each model's completed trials are evaluated as a study of their
    own. Models with fewer than two trials, or nothing that varies, are left out.
    """
    optuna = _optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    found: dict[str, dict[str, float]] = {}
    for index, entry in enumerate(spec.models):
        prefix = f"{index}."
        mine = [t for t in done if t.params.get("model") == index]
        varying = {name for name in {n for t in mine for n in t.params if n.startswith(prefix)}
                   if len({json.dumps(t.params.get(name), default=str) for t in mine}) > 1}
        if len(mine) < 2 or not varying:
            continue
        names = sorted(n for n in varying if all(n in t.params for t in mine))
        if not names:
            continue
        alone = optuna.create_study(direction=study.direction)
        alone.add_trials([optuna.trial.create_trial(
            params={n: t.params[n] for n in names}, distributions={n: t.distributions[n] for n in names},
            value=t.value) for t in mine])
        scores = optuna.importance.get_param_importances(
            alone, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        key = entry.type if entry.type not in found else f"{entry.type}[{index}]"
        found[key] = {name[len(prefix):]: float(value) for name, value in scores.items()}
    return found
