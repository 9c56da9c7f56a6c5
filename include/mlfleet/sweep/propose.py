"""A round's proposals (which trials run, packed into batches by predicted runtime) and the
record of how the finished ones scored.

A round's batches are written down before they are returned, so a retried `propose` gives the
same batches (and asks Optuna nothing new); telling is idempotent. A bayes round first tells
Optuna every finished trial, so its asks learn from all rounds before it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec
from mlfleet.storage import write_json_atomic
from mlfleet.sweep.batches import collect_rows
from mlfleet.sweep.context import SweepContext
from mlfleet.sweep.rounds import batch_size
from mlfleet.trials import Trial, expand, plan_batches


def round_file(context: SweepContext, round_index: int) -> Path:
    return context.results_path / "rounds" / f"{round_index:03d}.json"


def open_study(context: SweepContext, settings: Settings) -> Any:
    from mlfleet.tuning import open_study as open_optuna_study

    return open_optuna_study(storage=settings.optuna_storage, name=context.study, seed=context.experiment_spec.cv.seed)


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
        remaining = (spec.search.n_trials or 0) - round_index * batch_size(spec)
        trials = ask(open_study(context, settings), spec, min(batch_size(spec), remaining)) if remaining > 0 else []
    else:
        trials = expand(spec)
    payload = plan_round(spec, trials, round_index=round_index, settings=settings, backend=context.backend)
    write_json_atomic(path, payload)
    return payload


def plan_round(spec: ExperimentSpec, trials: list[Trial], *, round_index: int, settings: Settings,
               backend: str) -> list[dict[str, Any]]:
    """Batches of a round: trials grouped by their `resources` (one machine shape per batch), then
    packed by predicted runtime onto as many cores as a batch's machine has."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(spec.resources_for(trial.model_index).model_dump_json(), []).append(trial)
    payload = []
    for key, members in sorted(groups.items()):
        resources = json.loads(key)
        cores = settings.workers if backend == "local" else max(1, int(resources["cpu"]))
        share = max(1, round(spec.budget.max_parallel * len(members) / len(trials)))
        for batch in plan_batches(members, folds=spec.cv.folds, cores_per_batch=cores, max_batches=share,
                                  target_seconds=settings.batch_target_seconds, prefix=f"r{round_index}"):
            payload.append({**batch.to_dict(), "round": round_index, "resources": resources})
    return sorted(payload, key=lambda b: b["batch_id"])


def proposed_trials(context: SweepContext) -> list[Trial]:
    """Every trial any round proposed, from the round files."""
    trials = []
    for path in sorted((context.results_path / "rounds").glob("*.json")):
        for batch in json.loads(path.read_text()):
            trials += [Trial.from_dict(t) for t in batch["trials"]]
    return trials


def record(context: SweepContext, *, settings: Settings) -> int:
    """Tell Optuna the scores of every finished bayes trial (no-op for grid and random); idempotent."""
    if context.experiment_spec.search.strategy != "bayes":
        return 0
    from mlfleet.tuning import tell

    return tell(open_study(context, settings), collect_rows(context), proposed_trials(context))
