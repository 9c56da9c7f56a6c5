"""How many rounds a sweep needs, and the most a DAG run holds (Airflow 3.3 has no loops)."""

from __future__ import annotations

import math

from mlfleet.spec import ExperimentSpec, SpecError

# The rounds experiment_sweep and retrain unroll; a spec needing more is refused at `prepare`.
SWEEP_MAX_ROUNDS = 6
RETRAIN_MAX_ROUNDS = 4


def batch_size(spec: ExperimentSpec) -> int:
    """Trials a bayes round asks for at once."""
    return spec.search.batch_size or spec.budget.max_parallel


def rounds_needed(spec: ExperimentSpec) -> int:
    if spec.search.strategy != "bayes":
        return 1
    return math.ceil((spec.search.n_trials or 1) / batch_size(spec))


def check_round_limit(spec: ExperimentSpec, limit: int) -> None:
    if rounds_needed(spec) > limit:
        raise SpecError(
            "search.batch_size",
            f"n_trials={spec.search.n_trials} in batches of {spec.search.batch_size} needs {rounds_needed(spec)} rounds; "
            f"the DAG runs at most {limit}: raise batch_size to at least {math.ceil((spec.search.n_trials or 1) / limit)}",
        )
