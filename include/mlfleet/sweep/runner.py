"""`mlfleet sweep`: the same steps as the DAG, one after another (local backend).

Each step runs in a process forked from this one, as each of the DAG's tasks runs in a process
forked from `mlfleet up`'s preloaded executor worker: this process imports what the steps need
(mlfleet.preload), and a step starts with it and with one thread. A step process with one thread
may fork again, so a batch's training process and its fold pool's workers are forks rather than
new interpreters, and finalize's MLflow trial runs are logged beside its other steps
(mlfleet.forking). In this process itself the libraries' thread pools (OpenBLAS, Arrow's jemalloc,
Arrow's CPU pool once it reads Parquet) forbid both. What finalize alone imports (MLflow, 2-3 s)
is imported here while the first batch trains, on the cores it shares with that batch.

Measured on 2 cores (2026-12-03, the 75-fit grid of `make bench`, alternating, each pair in one
run): 86.8 and 83.1 s with every step in this process, 80.5 and 81.8 s with each in a fork and
MLflow imported before the first batch; later, on a slower spell of the same VM, 87.9 s in this
process and 84.6 s in forks with MLflow imported while the batch trains (training then starts
2.4 s into the command instead of 4.3-4.5 s).

Where steps may not fork (not Linux, or this process runs Python threads of its own, as a pytest
worker does), they run here, with the same results.
"""

from __future__ import annotations

from typing import Any, Callable

from mlfleet.config import Settings
from mlfleet.forking import in_fork, may_fork_steps
from mlfleet.spec import SpecError
from mlfleet.sweep.batches import run_batch
from mlfleet.sweep.context import SweepContext
from mlfleet.sweep.finalize import finalize
from mlfleet.sweep.prepare import prepare, validate
from mlfleet.sweep.propose import propose
from mlfleet.trials import space_notice


def run_sweep(spec_source: Any, *, settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a whole sweep, rounds one after another, each step in its own fork where allowed; returns the leaderboard."""
    say = progress or (lambda _msg: None)
    spec = validate(spec_source, settings=settings)
    if (spec.backend or settings.backend) != "local":
        raise SpecError("backend", f"`mlfleet sweep` runs trials on this machine; a {spec.backend or settings.backend} sweep "
                        "runs through the experiment_sweep DAG (see its requests with `mlfleet plan`)")
    steps = Steps()
    context = SweepContext.load(steps.run(_prepare, spec=spec, settings=settings))
    say(f"{context.experiment} {context.run_id}: {context.n_rows} rows, {len(context.features)} features, "
        f"{context.rounds} round(s)")
    notice = space_notice(strategy=spec.search.strategy, asked=spec.search.n_trials, running=context.n_trials)
    if notice:
        say(f"{context.experiment} {context.run_id}: {notice}")
    done = 0
    best: float | None = None
    for round_index in range(context.rounds):
        for batch in steps.run(propose, context=context, round_index=round_index, settings=settings):
            training = steps.start(run_batch, context=context, batch=batch, settings=settings)
            steps.preload_finalize()
            summary = training()
            done += summary["trials"]
            if summary["best"] and (best is None or summary["best"]["mean_score"] > best):
                best = summary["best"]["mean_score"]
            shown = "-" if best is None else f"{best:.5f}"
            say(f"{done}/{context.n_trials} trials done, best {context.metric} {shown}")
    steps.preload_finalize()
    return steps.run(finalize, context=context, settings=settings)


def _prepare(*, spec: Any, settings: Settings) -> dict[str, str]:
    return prepare(spec, settings=settings).ref()


class Steps:
    """Runs each step in a fork of this preloaded process where steps may fork (`may_fork_steps`), else here."""

    def __init__(self) -> None:
        from mlfleet.preload import STEP_MODULES, preload

        self.forks = may_fork_steps()
        if self.forks:
            preload(STEP_MODULES)

    def start(self, fn: Callable[..., Any], **kwargs: Any) -> Callable[[], Any]:
        """Start `fn(**kwargs)`; returns a function that waits for its value."""
        if self.forks and may_fork_steps():  # still no Python thread of its own
            return in_fork(fn, **kwargs)
        return lambda: fn(**kwargs)

    def run(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        return self.start(fn, **kwargs)()

    def preload_finalize(self) -> None:
        """Import what finalize needs here, once, so its fork and the forks it makes start with it."""
        if self.forks:
            from mlfleet.preload import FINALIZE_MODULES, preload

            preload(FINALIZE_MODULES)
