"""`mlfleet sweep`'s runner: each step in a fork of a preloaded process, so a batch trains in a fork
and finalize logs trial runs beside its other steps; a bayes sweep runs every round it needs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from mlfleet import tuning
from mlfleet.sweep import run_sweep

SPEC = {"name": "iris-forty", "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
        "search": {"strategy": "bayes", "n_trials": 40, "batch_size": 4},
        "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.001, 100.0], "log": True}}}]}


ROOT = Path(__file__).resolve().parents[3]
# As `mlfleet sweep` runs it: a fresh interpreter (a pytest worker has threads of its own, and a
# process with Python threads runs the steps itself).
STEPS_SCRIPT = r"""
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(message)s")
from mlfleet.config import get_settings
from mlfleet.sweep import run_sweep
board = run_sweep(sys.argv[1], settings=get_settings())
print(json.dumps({"trials": len(board["trials"]), "version": board["registered_model"]["version"]}))
"""


def test_each_step_runs_in_a_fork_so_training_forks_and_trial_runs_are_logged_beside(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLEET_HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", STEPS_SCRIPT, str(ROOT / "specs/iris-quick.yaml")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"trials": 5, "version": "1"}
    log = done.stderr
    for step in ("_prepare", "propose", "run_batch", "finalize"):
        assert re.search(rf"^LOG {step}: running beside this process, in process \d+ forked", log, re.M), step
    # In the step processes, with one thread each: the batch's training process is a fork, not a new
    # interpreter, and finalize's MLflow trial runs go beside its other steps.
    assert re.search(r"\[run_batch, process \d+\] batch r0-\w+: training process \d+ forked from this one", log), log[-3000:]
    assert re.search(r"\[finalize, process \d+\] log_trials: running beside this process", log), log[-3000:]


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
