from __future__ import annotations

import pytest

from mlfleet.spec import SpecError, parse_spec
from mlfleet.sweep.rounds import check_round_limit, rounds_needed


def spec(**search):
    return parse_spec({"name": "r", "task": "classification", "target": "target", "metric": "accuracy",
                       "dataset": {"builtin": "iris"}, "search": search, "budget": {"max_parallel": 3},
                       "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.1, 10]}} if search.get("strategy") != "grid" else {"C": [1.0]}}]})


@pytest.mark.parametrize("search,rounds", [
    ({"strategy": "grid"}, 1),
    ({"strategy": "random", "n_trials": 50}, 1),
    ({"strategy": "bayes", "n_trials": 8, "batch_size": 4}, 2),
    ({"strategy": "bayes", "n_trials": 9, "batch_size": 4}, 3),
    ({"strategy": "bayes", "n_trials": 7}, 3),  # batch_size defaults to budget.max_parallel
])
def test_rounds_needed(search: dict, rounds: int) -> None:
    assert rounds_needed(spec(**search)) == rounds


def test_round_limit_names_the_field_and_the_fix() -> None:
    check_round_limit(spec(strategy="bayes", n_trials=24, batch_size=4), 6)
    with pytest.raises(SpecError, match=r"search.batch_size: n_trials=100 in batches of 4 needs 25 rounds; "
                                        r"the DAG runs at most 6: raise batch_size to at least 17"):
        check_round_limit(spec(strategy="bayes", n_trials=100, batch_size=4), 6)
