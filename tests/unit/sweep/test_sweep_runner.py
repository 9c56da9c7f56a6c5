"""`mlfleet sweep`'s runner: every step in this process, each batch in a training process of its
own (the one `mlfleet up` starts too), finalize's libraries imported while the first batch trains;
a bayes sweep runs every round it needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import psutil
import pytest

from mlfleet import tuning
from mlfleet.backends import local
from mlfleet.spec import SpecError
from mlfleet.sweep import run_sweep, runner

SPEC = {"name": "iris-forty", "task": "classification", "target": "target", "metric": "accuracy",
        "dataset": {"builtin": "iris"}, "cv": {"folds": 2, "seed": 0},
        "search": {"strategy": "bayes", "n_trials": 40, "batch_size": 4},
        "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.001, 100.0], "log": True}}}]}
ROOT = Path(__file__).resolve().parents[3]


def test_the_batch_trains_in_its_own_process_while_finalizes_libraries_are_imported(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real_run_batch = local.run_batch

    def run_batch(batch_dir: Path, **kwargs: Any) -> Any:
        imports = kwargs["while_training"]

        def noting_the_trainer() -> None:  # what runs while the batch trains
            pid = int((batch_dir / local.PID_FILE).read_text())
            trainer = psutil.Process(pid)
            seen.append({"pid": pid, "cmdline": trainer.cmdline(), "alive": trainer.status() != psutil.STATUS_ZOMBIE})
            imports()

        return real_run_batch(batch_dir, **{**kwargs, "while_training": noting_the_trainer})

    monkeypatch.setattr(local, "run_batch", run_batch)
    board = run_sweep(str(ROOT / "specs/iris-quick.yaml"), settings=settings)

    assert len(board["trials"]) == 5 and board["registered_model"]["version"] == "1"
    assert len(seen) == 1, seen  # one batch
    trainer = seen[0]
    assert trainer["alive"] and trainer["pid"] != psutil.Process().pid
    assert trainer["cmdline"][1:5] == ["-m", "mlfleet.training.entrypoint", "train", "--root"]
    assert runner.import_libraries.cache_info().currsize == 1  # imported, once


def test_a_spec_error_found_in_the_data_is_raised_as_it_is(settings: Any) -> None:
    # The target is checked against the loaded data, in `prepare`: the CLI prints this error's line and exits 2.
    spec = {**SPEC, "name": "iris-churn", "target": "churned"}
    with pytest.raises(SpecError) as raised:
        run_sweep(spec, settings=settings)
    assert raised.value.field == "target" and "churned" in str(raised.value)


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
