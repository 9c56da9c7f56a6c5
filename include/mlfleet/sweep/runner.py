"""`mlfleet sweep`: the same steps as the DAG, one after another in this process (local backend).

Each batch trains in a process of its own, started exactly as a `run_batch` task of `mlfleet up`
starts it (mlfleet.backends.local). While the first batch trains, this process imports what
finalize alone needs (`finalize.import_libraries`: MLflow, Optuna, plotly), on the cores it shares
with that batch, so neither waits for the other.
"""

from __future__ import annotations

from typing import Any, Callable

from mlfleet.config import Settings
from mlfleet.spec import SpecError
from mlfleet.sweep.batches import run_batch
from mlfleet.sweep.finalize import finalize, import_libraries
from mlfleet.sweep.prepare import prepare, validate
from mlfleet.sweep.propose import propose
from mlfleet.trials import space_notice


def run_sweep(spec_source: Any, *, settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a whole sweep, rounds one after another; returns the leaderboard."""
    say = progress or (lambda _msg: None)
    spec = validate(spec_source, settings=settings)
    if (spec.backend or settings.backend) != "local":
        raise SpecError("backend", f"`mlfleet sweep` runs trials on this machine; a {spec.backend or settings.backend} sweep "
                        "runs through the experiment_sweep DAG (see its requests with `mlfleet plan`)")
    context = prepare(spec, settings=settings)
    say(f"{context.experiment} {context.run_id}: {context.n_rows} rows, {len(context.features)} features, "
        f"{context.rounds} round(s)")
    notice = space_notice(strategy=spec.search.strategy, asked=spec.search.n_trials, running=context.n_trials)
    if notice:
        say(f"{context.experiment} {context.run_id}: {notice}")
    done = 0
    best: float | None = None
    for round_index in range(context.rounds):
        for batch in propose(context=context, round_index=round_index, settings=settings):
            summary = run_batch(context, batch, settings=settings, while_training=import_libraries)
            done += summary["trials"]
            if summary["best"] and (best is None or summary["best"]["mean_score"] > best):
                best = summary["best"]["mean_score"]
            shown = "-" if best is None else f"{best:.5f}"
            say(f"{done}/{context.n_trials} trials done, best {context.metric} {shown}")
    return finalize(context, settings=settings)
