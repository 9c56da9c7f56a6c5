"""`n_trials` trials run, or every configuration of a smaller space, said before anything runs (the
CLI's progress, the task log), and a bayes sweep never asks a configuration it has tried."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mlfleet.sweep import propose, run_sweep
from mlfleet.sweep.prepare import prepare

NOTICE = "the space holds 4 distinct configurations; running 4 of the 20 asked"


def iris(search: dict[str, Any], C: list[float]) -> dict[str, Any]:
    return {"name": "iris-count", "task": "classification", "target": "target", "metric": "accuracy",
            "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0}, "search": search,
            "models": [{"type": "logistic_l1", "params": {"C": C}}]}


def test_a_small_random_space_runs_every_configuration_and_says_so_first(settings) -> None:
    said: list[str] = []
    board = run_sweep(iris({"strategy": "random", "n_trials": 20}, [0.01, 0.1, 1.0, 10.0]), settings=settings,
                      progress=said.append)
    assert sorted(t["params"]["C"] for t in board["trials"]) == [0.01, 0.1, 1.0, 10.0]
    notice = next(i for i, line in enumerate(said) if line.endswith(NOTICE))
    assert notice < next(i for i, line in enumerate(said) if "trials done" in line)
    assert said[-1].startswith("4/4 trials done")


def test_bayes_stops_at_the_space_and_no_round_repeats_a_configuration(
        settings, caplog: pytest.LogCaptureFixture) -> None:
    spec = iris({"strategy": "bayes", "n_trials": 20, "batch_size": 4}, [0.001, 0.01, 0.1, 1.0, 10.0, 100.0])
    with caplog.at_level(logging.INFO, logger="mlfleet.sweep.prepare"):
        context = prepare(spec, settings=settings)
    said = [r.getMessage() for r in caplog.records]  # what the prepare task's log says
    assert any(m.endswith(": 6 trial(s) will run in 2 round(s)") for m in said)
    assert any(m.endswith("the space holds 6 distinct configurations; running 6 of the 20 asked") for m in said)
    assert (context.n_trials, context.rounds) == (6, 2)
    rounds = [[t for b in propose(context, round_index=k, settings=settings) for t in b["trials"]] for k in (0, 1)]
    assert [len(r) for r in rounds] == [4, 2]
    assert sorted(t["params"]["C"] for r in rounds for t in r) == [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
