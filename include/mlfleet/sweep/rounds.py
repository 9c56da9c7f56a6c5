"""A sweep's rounds: how many it needs, and what one round hands the next.

Grid and random sweeps are one round. A bayes sweep runs `ceil(n_trials / batch_size)` rounds,
however many that is: Airflow 3.3 has no loops, so each round after the first is a continuation
run of the same DAG, triggered with a run id derived from the sweep and the round (a retried
trigger finds its run instead of starting a second), and the last round finalizes the sweep.
docs/rounds.md says why this design.
"""

from __future__ import annotations

import math
from typing import Any

from mlfleet.spec import ExperimentSpec


def batch_size(spec: ExperimentSpec) -> int:
    """Trials a bayes round asks for at once."""
    return spec.search.batch_size or spec.budget.max_parallel


def rounds_needed(spec: ExperimentSpec, *, n_trials: int | None = None) -> int:
    """Rounds for `n_trials` trials (default: the spec's; a space smaller than that gives fewer)."""
    if spec.search.strategy != "bayes":
        return 1
    return math.ceil((n_trials or spec.search.n_trials or 1) / batch_size(spec))


def continuation_run_id(experiment: str, run_id: str, round_index: int) -> str:
    """The Airflow run id of a sweep's round `round_index` (>= 1): the same on every retry."""
    return f"{experiment}__{run_id}__round_{round_index:04d}"


def next_round(*, sweep_ref: dict[str, str], round_index: int, rounds: int) -> dict[str, Any] | None:
    """The continuation to trigger after round `round_index` (its run id and conf), or None after the last."""
    if round_index + 1 >= rounds:
        return None
    return {"trigger_run_id": continuation_run_id(sweep_ref["experiment"], sweep_ref["run_id"], round_index + 1),
            "conf": {"sweep": sweep_ref, "round": round_index + 1}}
