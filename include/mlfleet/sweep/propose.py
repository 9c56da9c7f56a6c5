"""A round's proposals (which trials run, packed into batches by predicted runtime) and the
record of how the finished ones scored.

A round's batches are written down before they are returned, so a retried `propose` gives the
same batches (and asks Optuna nothing new); an attempt that died between asking and writing left
RUNNING trials, which the retry takes as its round (see `tuning.ask`); telling is idempotent. A bayes round first tells
Optuna every finished trial and records their fold times in the fit history, so both its asks
and its runtime predictions learn from all rounds before it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from typing import TYPE_CHECKING, Any

from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec
from mlfleet.storage import Location, write_json_atomic
from mlfleet.sweep.batches import collect_rows
from mlfleet.sweep.context import SweepContext
from mlfleet.sweep.rounds import batch_size
from mlfleet.trials import Trial, expand, plan_batches

if TYPE_CHECKING:
    from mlfleet.fit_history import RuntimeModel

log = logging.getLogger(__name__)


def round_file(context: SweepContext, round_index: int) -> Location:
    return context.results_path / "rounds" / f"{round_index:03d}.json"


def open_study(context: SweepContext, settings: Settings, *, round_index: int = 0) -> Any:
    """The sweep's study, its sampler seeded per round.

    Each round asks from a new process (a new sampler): with one seed for every round, the sampler's
    random start-up draws would repeat round after round, proposing the same trials again. The
    seed still depends only on the spec and the round, so a sweep is reproducible.
    """
    from mlfleet.tuning import open_study as open_optuna_study

    return open_optuna_study(storage=settings.optuna_storage, name=context.study,
                             seed=context.experiment_spec.cv.seed + round_index)


def propose(context: SweepContext, *, round_index: int, settings: Settings) -> list[dict[str, Any]]:
    """A round's batches; a retried proposal returns the same batches (they are written down)."""
    path = round_file(context, round_index)
    if path.is_file():
        return json.loads(path.read_text())
    spec = context.experiment_spec
    if round_index >= context.rounds:
        trials: list[Trial] = []
    elif spec.search.strategy == "bayes":
        from mlfleet.tuning import ask

        record(context, settings=settings)
        record_history(context, settings=settings)  # so this round's predictions learn from the last
        # context.n_trials: n_trials, or the space's size when it holds fewer distinct configurations
        wanted = min(batch_size(spec), context.n_trials - round_index * batch_size(spec))
        proposed = proposed_trials(context)
        known = {t.optuna_number for t in proposed if t.optuna_number is not None}
        trials = (ask(open_study(context, settings, round_index=round_index), spec, wanted, known=known,
                      tried={t.trial_id for t in proposed}) if wanted > 0 else [])
        if len(trials) < wanted:
            log.warning("round %d: every configuration of the space is tried; running %d of the %d this round asked",
                        round_index, len(trials), wanted)
    else:
        trials = expand(spec)
    payload = plan_round(spec, trials, round_index=round_index, settings=settings, backend=context.backend,
                         n_rows=context.n_rows, n_features=len(context.features))
    write_json_atomic(path, payload)
    return payload


def plan_round(spec: ExperimentSpec, trials: list[Trial], *, round_index: int, settings: Settings,
               backend: str, runtime: RuntimeModel | None = None, n_rows: int | None = None,
               n_features: int | None = None) -> list[dict[str, Any]]:
    """Batches of a round: trials grouped by their `resources` (one machine shape per batch), then
    packed by predicted runtime onto as many cores as a batch's machine has.

    Runtimes come from `runtime` (default: the model fitted on the fit history) for a training
    set of `n_rows` x `n_features` (unknown: the history's mean). A round has at most
    `round_batch_limit` batches, shared between the groups by their number of trials.
    """
    if runtime is None:
        from mlfleet.fit_history import RuntimeModel

        runtime = RuntimeModel.load(settings.fit_history_path, models={t.model for t in trials},
                                    sample=settings.fit_history_sample)
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(spec.resources_for(trial.model_index).model_dump_json(), []).append(trial)
    ordered = sorted(groups.items())
    shares = _apportion([len(members) for _, members in ordered], round_batch_limit(spec, settings=settings, backend=backend))
    payload = []
    for (key, members), share in zip(ordered, shares):
        resources = json.loads(key)
        cores = batch_cores(resources, settings=settings, backend=backend)
        predictor = runtime.predictor(n_rows=n_rows, n_features=n_features, workers=cores)
        for batch in plan_batches(members, folds=spec.cv.folds, cores_per_batch=cores, max_batches=share,
                                  target_seconds=settings.batch_target_seconds, predictor=predictor,
                                  prefix=f"r{round_index}"):
            payload.append({**batch.to_dict(), "round": round_index, "resources": resources})
    return sorted(payload, key=lambda b: b["batch_id"])


def batch_cores(resources: dict[str, Any], *, settings: Settings, backend: str) -> int:
    """The cores a batch runs on: the local worker count, else its machine's `cpu`."""
    return settings.workers if backend == "local" else max(1, int(resources["cpu"]))


def round_batch_limit(spec: ExperimentSpec, *, settings: Settings, backend: str) -> int:
    """How many batches one round may have: the spec's max_parallel; on the local backend also no
    more than run side by side on this machine's cores (batches x workers <= cores)."""
    if backend == "local":
        return max(1, min(spec.budget.max_parallel, (os.cpu_count() or 1) // settings.workers))
    return spec.budget.max_parallel


def _apportion(sizes: list[int], limit: int) -> list[int]:
    """`limit` batches shared by group size (largest remainder), at least one per group."""
    total = sum(sizes)
    quotas = [limit * size / total for size in sizes]
    shares = [max(1, math.floor(quota)) for quota in quotas]
    spare = limit - sum(shares)
    for index in sorted(range(len(sizes)), key=lambda i: (shares[i] - quotas[i], i)):
        if spare <= 0:
            break
        shares[index] += 1
        spare -= 1
    return shares


def proposed_trials(context: SweepContext) -> list[Trial]:
    """Every trial any round proposed, from the round files."""
    trials = []
    for path in sorted((context.results_path / "rounds").glob("*.json"), key=str):
        for batch in json.loads(path.read_text()):
            trials += [Trial.from_dict(t) for t in batch["trials"]]
    return trials


def record(context: SweepContext, *, settings: Settings) -> int:
    """Tell Optuna the scores of every finished bayes trial (no-op for grid and random); idempotent."""
    if context.experiment_spec.search.strategy != "bayes":
        return 0
    from mlfleet.tuning import tell

    return tell(open_study(context, settings), collect_rows(context), proposed_trials(context))


def record_history(context: SweepContext, *, settings: Settings, rows: list[dict[str, Any]] | None = None,
                   trials: list[Trial] | None = None) -> int:
    """Add the sweep's finished folds to the fit history (idempotent), so later rounds and sweeps
    predict runtimes from them. A history that cannot be written costs predictions, not the sweep."""
    from mlfleet.fit_history import FitHistory, fold_records

    spec = context.experiment_spec
    rows = collect_rows(context) if rows is None else rows
    if not rows:
        return 0
    trials = proposed_trials(context) if trials is None else trials
    cores = {t.trial_id: batch_cores(spec.resources_for(t.model_index).model_dump(), settings=settings,
                                     backend=context.backend) for t in trials}
    records = fold_records(rows, experiment=context.experiment, run_id=context.run_id, folds=spec.cv.folds,
                           n_rows=context.n_rows, n_features=len(context.features), workers=cores,
                           default_workers=batch_cores(spec.resources.model_dump(), settings=settings,
                                                       backend=context.backend))
    try:
        return FitHistory(settings.fit_history_path).record(records)
    except sqlite3.Error as err:
        log.warning("fit history %s: not recorded (%s); runtimes stay predicted from older history",
                    settings.fit_history_path, err)
        return 0
