"""Sweeps at once never clobber each other: two `mlfleet sweep`s of one spec started together and a
third of another spec, as separate processes on one MLFLEET_HOME (real training, MLflow, Optuna).

Each gets its own results directory, leaderboard, Optuna study and registry version; the Optuna
race of several `record` tasks on PostgreSQL is tests/integration/test_storage_backends.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfleet.config import Settings
from mlfleet.results.leaderboard import read_leaderboard
from mlfleet.tuning import load_study

pytestmark = pytest.mark.slow
MLFLEET = str(Path(sys.executable).parent / "mlfleet")
SAME = {"name": "iris-twins", "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 3, "seed": 0},
        "models": [{"type": "logistic_l1", "params": {"C": [0.1, 1.0, 10.0]}}]}
OTHER = {**SAME, "name": "wine-alone", "dataset": {"builtin": "wine"},
         "models": [{"type": "logistic_l1", "params": {"C": [0.5, 5.0]}}]}


def test_three_sweeps_at_once_keep_their_own_results_studies_and_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MLFLEET_HOME": str(home), "MLFLEET_LOCAL_WORKERS": "1"}
    specs = []
    for index, spec in enumerate([SAME, SAME, OTHER]):
        path = tmp_path / f"spec-{index}.json"
        path.write_text(json.dumps(spec))
        specs.append(path)
    runs = [subprocess.Popen([MLFLEET, "sweep", str(p)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for p in specs]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs

    settings = Settings(home=home)
    twins = sorted((settings.experiments_dir / "iris-twins").iterdir())
    alone = sorted((settings.experiments_dir / "wine-alone").iterdir())
    assert len(twins) == 2 and len(alone) == 1
    versions = []
    for directory, n_trials in [(twins[0], 3), (twins[1], 3), (alone[0], 2)]:
        board = read_leaderboard(directory)
        assert board["run_id"] == directory.name and board["n_trials"] == n_trials and board["n_failed"] == 0
        context = json.loads((directory / "context.json").read_text())
        assert context["results_dir"] == str(directory)
        study = load_study(storage=settings.optuna_storage, name=context["study"])
        assert len(study.trials) == n_trials  # each sweep's trials in its own study, none twice
        versions.append((board["experiment"], board["registered_model"]["version"],
                         board["registered_model"]["tags"]["mlfleet.sweep_run_id"]))
    # Two versions of the twins' model, one per sweep; the other model its own first version.
    assert sorted(v for name, v, _ in versions if name == "iris-twins") == ["1", "2"]
    assert {run for name, _, run in versions if name == "iris-twins"} == {t.name for t in twins}
    assert [(name, v) for name, v, _ in versions if name == "wine-alone"] == [("wine-alone", "1")]
