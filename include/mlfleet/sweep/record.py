"""Between rounds: tell Optuna how the finished bayes trials scored."""

from __future__ import annotations

from mlfleet.config import Settings
from mlfleet.sweep.batches import collect_rows
from mlfleet.sweep.context import SweepContext
from mlfleet.sweep.propose import open_study, proposed_trials


def record(context: SweepContext, *, settings: Settings) -> int:
    """Tell Optuna the scores of every finished bayes trial (no-op for grid and random); idempotent."""
    if context.experiment_spec.search.strategy != "bayes":
        return 0
    from mlfleet.tuning import tell

    return tell(open_study(context, settings), collect_rows(context), proposed_trials(context))
