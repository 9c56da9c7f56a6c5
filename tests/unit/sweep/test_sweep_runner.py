"""`mlfleet sweep`'s runner: a bayes sweep runs every round it needs, with no ceiling on rounds."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from mlfleet import tuning
from mlfleet.sweep import run_sweep

SPEC = {"name": "iris-forty", "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
        "search": {"strategy": "bayes", "n_trials": 40, "batch_size": 4},
        "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.001, 100.0], "log": True}}}]}


@pytest.mark.slow  # ten rounds, each a training process: about a minute
def test_forty_trials_in_batches_of_four_run_ten_rounds(settings) -> None:
    board = run_sweep(SPEC, settings=settings)
    results = Path(board["results_uri"].removeprefix("file://"))
    assert sorted(p.name for p in (results / "rounds").iterdir()) == [f"{k:03d}.json" for k in range(10)]
    rounds = [json.loads((results / "rounds" / f"{k:03d}.json").read_text()) for k in range(10)]
    assert [sum(len(b["trials"]) for b in r) for r in rounds] == [4] * 10
    assert len(board["trials"]) == 40
    context = json.loads((results / "context.json").read_text())
    study = tuning.load_study(storage=settings.optuna_storage, name=context["study"])
    assert len(study.get_trials()) == 40
    assert {t.state for t in study.get_trials()} == {optuna.trial.TrialState.COMPLETE}
    # each round asked after the previous one was told: round k's trials are Optuna's 4k..4k+3
    numbers = [[t["optuna_number"] for b in r for t in b["trials"]] for r in rounds]
    assert [sorted(n) for n in numbers] == [list(range(4 * k, 4 * k + 4)) for k in range(10)]
