from __future__ import annotations

import pytest

from mlfleet.spec import parse_spec
from mlfleet.sweep.rounds import continuation_run_id, next_round, rounds_needed


def spec(**search):
    grid = search.get("strategy") == "grid"
    return parse_spec({"name": "r", "task": "classification", "target": "target", "metric": "accuracy",
                       "dataset": {"builtin": "iris"}, "search": search, "budget": {"max_parallel": 3},
                       "models": [{"type": "logistic_l1", "params": {"C": [1.0] if grid else {"float": [0.1, 10]}}}]})


@pytest.mark.parametrize("search,rounds", [
    ({"strategy": "grid"}, 1),
    ({"strategy": "random", "n_trials": 50}, 1),
    ({"strategy": "bayes", "n_trials": 8, "batch_size": 4}, 2),
    ({"strategy": "bayes", "n_trials": 9, "batch_size": 4}, 3),
    ({"strategy": "bayes", "n_trials": 7}, 3),  # batch_size defaults to budget.max_parallel
    ({"strategy": "bayes", "n_trials": 100, "batch_size": 4}, 25),  # no ceiling
])
def test_rounds_needed(search: dict, rounds: int) -> None:
    assert rounds_needed(spec(**search)) == rounds


REF = {"experiment": "churn", "run_id": "20261201T100000-ab12", "results_dir": "/x"}


def test_each_round_but_the_last_names_its_continuation() -> None:
    first = next_round(sweep_ref=REF, round_index=0, rounds=3)
    assert first == {"trigger_run_id": "churn__20261201T100000-ab12__round_0001", "conf": {"sweep": REF, "round": 1}}
    assert next_round(sweep_ref=REF, round_index=1, rounds=3)["conf"]["round"] == 2
    assert next_round(sweep_ref=REF, round_index=2, rounds=3) is None
    assert next_round(sweep_ref=REF, round_index=0, rounds=1) is None


def test_continuation_run_ids_are_deterministic_and_sort_by_round() -> None:
    ids = [continuation_run_id("churn", "r", k) for k in (1, 2, 10, 999)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert continuation_run_id("churn", "r", 3) == continuation_run_id("churn", "r", 3)
