"""Trials: expand a spec's search space (grid, random), count it, and pack trials into batches.

A trial's id comes from its identity (model type + params), so the same trial gets the same
id, job name and output path on every retry and every scheduler restart.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

from mlfleet.spec import ExperimentSpec, Range, param_domain
from mlfleet.storage import short_digest

# Seconds one CV fold of one trial takes on one core, before any history is known. Rough
# figures for ~10k rows; the planner only needs their ratios right.
DEFAULT_FOLD_SECONDS = {"xgboost": 0.6, "lightgbm": 0.4, "random_forest": 1.0, "logistic_l1": 0.1, "mlp": 2.0}


@dataclass(frozen=True)
class Trial:
    trial_id: str
    model: str
    params: dict[str, Any]
    model_index: int = 0
    optuna_number: int | None = None
    # Core-seconds the planner predicts for all folds; set on the trials of a planned batch. Not
    # part of the trial's identity (equality, trial_id), and absent from older round files.
    predicted_seconds: float | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        return cls(**data)


def trial_id(model: str, params: dict[str, Any]) -> str:
    """`<model>-<8 hex>` from the trial's identity; stable across processes and runs."""
    blob = json.dumps({"model": model, "params": params}, sort_keys=True, default=str)
    return f"{model.replace('_', '-')}-{short_digest(blob, 8)}"


def make_trial(model: str, params: dict[str, Any], model_index: int, optuna_number: int | None = None) -> Trial:
    return Trial(trial_id(model, params), model, params, model_index, optuna_number)


def expand_grid(spec: ExperimentSpec) -> list[Trial]:
    trials: list[Trial] = []
    for index, entry in enumerate(spec.models):
        keys = list(entry.params)
        for values in itertools.product(*(entry.params[k] for k in keys)):
            trials.append(make_trial(entry.type, dict(zip(keys, values)), index))
    return _unique(trials)


def sample_params(domains: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, raw in domains.items():
        domain = param_domain(raw)
        if isinstance(domain, Range):
            if domain.log:
                value = math.exp(rng.uniform(math.log(domain.low), math.log(domain.high)))
            else:
                value = rng.uniform(domain.low, domain.high)
            params[key] = int(round(value)) if domain.kind == "int" else value
        elif isinstance(domain, list):
            params[key] = rng.choice(domain)
        else:
            params[key] = domain
    return params


def expand_random(spec: ExperimentSpec) -> list[Trial]:
    """`n_trials` distinct trials, or every configuration when the space holds fewer.

    Models are taken in turn and the draws are seeded by `cv.seed`, so a rerun draws the same;
    the first `n_trials` draws are what they always were, so existing sweeps keep their trials. A
    draw that repeats a configuration is drawn again (at most `RANDOM_REDRAWS` extra draws, a
    model whose every configuration is drawn sits out); what the draws still miss of a finite
    space is then taken in order (`configurations`).
    """
    wanted = spec.search.n_trials or 0
    sizes = [model_space_size(entry.params) for entry in spec.models]
    rng = random.Random(spec.cv.seed)
    found: dict[str, Trial] = {}
    drawn: list[set[str]] = [set() for _ in spec.models]  # the distinct ids each model has drawn

    def draw(index: int) -> None:
        entry = spec.models[index]
        trial = make_trial(entry.type, sample_params(entry.params, rng), index)
        drawn[index].add(trial.trial_id)
        found.setdefault(trial.trial_id, trial)

    for turn in range(wanted):
        draw(turn % len(spec.models))
    redraws = 0
    while len(found) < wanted and redraws < max(RANDOM_REDRAWS, wanted):
        open_models = [i for i, size in enumerate(sizes) if size is None or len(drawn[i]) < size]
        if not open_models:
            break
        draw(open_models[redraws % len(open_models)])
        redraws += 1
    for trial in configurations(spec):
        if len(found) >= wanted:
            break
        found.setdefault(trial.trial_id, trial)
    return list(found.values())


# Extra draws random search makes for repeats (at least; `n_trials` when that is more) before it
# takes the rest of a finite space in order.
RANDOM_REDRAWS = 100


def param_values(raw: Any) -> Sequence[Any] | None:
    """Every value a parameter can take, when there are finitely many: a list's distinct choices
    (distinct as trial ids see them), an int range's integers, a fixed value; None for a float range."""
    domain = param_domain(raw)
    if isinstance(domain, Range):
        if domain.kind == "int":
            return range(int(round(domain.low)), int(round(domain.high)) + 1)
        return [domain.low] if domain.low == domain.high else None
    if isinstance(domain, list):
        distinct: dict[str, Any] = {}
        for value in domain:
            distinct.setdefault(json.dumps(value, sort_keys=True, default=str), value)
        return list(distinct.values())
    return [domain]


def model_space_size(params: dict[str, Any]) -> int | None:
    """How many distinct configurations one model's params hold; None when a float range makes it unbounded."""
    values = [param_values(raw) for raw in params.values()]
    if any(v is None for v in values):
        return None
    return math.prod(len(v) for v in values if v is not None)


def configurations(spec: ExperimentSpec) -> Iterator[Trial]:
    """Every configuration of the spec's finite models, model by model in the spec's order and each
    model's params as a grid would list them; lazily, so a large int range costs only what is read.
    Models with a float range are left out (their configurations cannot be listed)."""
    for index, entry in enumerate(spec.models):
        keys = list(entry.params)
        values = [param_values(entry.params[k]) for k in keys]
        if any(v is None for v in values):
            continue
        for combination in _product([v for v in values if v is not None]):
            yield make_trial(entry.type, dict(zip(keys, combination)), index)


def _product(values: list[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    """`itertools.product` without materializing its inputs (an int range may hold millions)."""
    if not values:
        yield ()
        return
    for head in values[0]:
        for rest in _product(values[1:]):
            yield (head, *rest)


def distinct_configurations(spec: ExperimentSpec, *, up_to: int) -> int:
    """How many distinct trials the spec's space holds, counted no further than `up_to`."""
    sizes = [model_space_size(entry.params) for entry in spec.models]
    if any(size is None or size >= up_to for size in sizes):
        return up_to
    if len({entry.type for entry in spec.models}) == len(spec.models):  # no two models can share a trial id
        return min(sum(size for size in sizes if size is not None), up_to)
    ids: set[str] = set()
    for trial in configurations(spec):
        ids.add(trial.trial_id)
        if len(ids) >= up_to:
            break
    return len(ids)


def count_trials(spec: ExperimentSpec) -> int:
    """How many trials the sweep runs: a grid's every combination, random search's distinct draws,
    bayes' `n_trials` or the space's size when it holds fewer distinct configurations."""
    if spec.search.strategy == "bayes":
        return distinct_configurations(spec, up_to=spec.search.n_trials or 0)
    return len(expand(spec))


def space_notice(*, strategy: str, asked: int | None, running: int) -> str | None:
    """The sentence a random or bayes sweep says before it runs when its space holds fewer distinct
    configurations than `n_trials` asked (CLI, task log, the UI's run header); None when it does not."""
    if strategy not in ("random", "bayes") or asked is None or running >= asked:
        return None
    plural = "" if running == 1 else "s"
    return f"the space holds {running} distinct configuration{plural}; running {running} of the {asked} asked"


def expand(spec: ExperimentSpec) -> list[Trial]:
    """Every trial of a grid or random search (bayes trials come from `mlfleet.tuning`)."""
    if spec.search.strategy == "grid":
        return expand_grid(spec)
    if spec.search.strategy == "random":
        return expand_random(spec)
    raise ValueError("bayes trials are proposed round by round by mlfleet.tuning")


def _unique(trials: list[Trial]) -> list[Trial]:
    seen: dict[str, Trial] = {}
    for trial in trials:
        seen.setdefault(trial.trial_id, trial)
    return list(seen.values())


@dataclass
class Batch:
    batch_id: str
    trials: list[Trial] = field(default_factory=list)
    predicted_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "predicted_seconds": round(self.predicted_seconds, 3),
            "trials": [t.to_dict() for t in self.trials],
        }


# Predicted seconds of one CV fold of a trial on one core (see mlfleet.fit_history.RuntimeModel).
FoldSeconds = Callable[[Trial], float]


def default_fold_seconds(trial: Trial) -> float:
    """One fold's seconds before any history: the model's default, scaled by n_estimators."""
    per_fold = DEFAULT_FOLD_SECONDS.get(trial.model, 1.0)
    n_estimators = trial.params.get("n_estimators")
    if isinstance(n_estimators, (int, float)) and not isinstance(n_estimators, bool) and n_estimators > 0:
        return per_fold * n_estimators / 100
    return per_fold


def predict_trial_seconds(trial: Trial, folds: int, predictor: FoldSeconds | None = None) -> float:
    """Predicted core-seconds of a trial: `folds` times one fold's prediction (the fitted runtime
    model's when given, else `default_fold_seconds`)."""
    return (predictor or default_fold_seconds)(trial) * folds


def plan_batches(
    trials: list[Trial],
    *,
    folds: int,
    cores_per_batch: int,
    max_batches: int,
    target_seconds: float,
    predictor: FoldSeconds | None = None,
    prefix: str = "b",
) -> list[Batch]:
    """Pack trials into batches by predicted runtime (longest first onto the lightest batch).

    The number of batches is what fills `target_seconds` of wall time per batch on
    `cores_per_batch` cores, capped at `max_batches`; so many short trials share a task instance
    while long trials spread out. Each batched trial carries its prediction (`predicted_seconds`),
    so the batch can start its longest (trial, fold) jobs first.
    """
    if not trials:
        return []
    cost = {t.trial_id: predict_trial_seconds(t, folds, predictor) for t in trials}
    total_wall = sum(cost.values()) / max(cores_per_batch, 1)
    n_batches = max(1, min(max_batches, len(trials), math.ceil(total_wall / target_seconds)))
    batches = [Batch(batch_id="") for _ in range(n_batches)]
    for trial in sorted(trials, key=lambda t: (-cost[t.trial_id], t.trial_id)):
        lightest = min(batches, key=lambda b: b.predicted_seconds)
        lightest.trials.append(replace(trial, predicted_seconds=round(cost[trial.trial_id], 3)))
        lightest.predicted_seconds += cost[trial.trial_id]
    for batch in batches:
        ids = ",".join(sorted(t.trial_id for t in batch.trials))
        batch.batch_id = f"{prefix}-{short_digest(ids, 10)}"
    return sorted(batches, key=lambda b: b.batch_id)
