"""The typed sweep context: saved once beside the results, passed between tasks as a small ref."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlfleet.spec import parse_spec
from mlfleet.sweep import SweepContext, SweepRef
from mlfleet.sweep.context import Champion, Retraining

SPEC = parse_spec({"name": "iris-quick", "task": "classification", "target": "target", "metric": "accuracy",
                   "dataset": {"builtin": "iris"}, "models": [{"type": "logistic_l1", "params": {"C": [1.0]}}],
                   "budget": {"max_parallel": 2, "timeout_minutes": 7}}).model_dump(mode="json", exclude_none=True)


def context(tmp_path: Path, **changes) -> SweepContext:
    fields = dict(experiment="iris-quick", run_id="20261201T000000-ab12", results_dir=str(tmp_path / "run"), spec=SPEC,
                  backend="local", features=["a", "b"], n_rows=150, data_path=str(tmp_path / "run/data/train.parquet"),
                  data_sha256="f" * 64, study="iris-quick.20261201T000000-ab12", rounds=1, n_trials=1)
    return SweepContext(**{**fields, **changes})


def test_saved_and_loaded_from_its_ref(tmp_path: Path) -> None:
    saved = context(tmp_path).save()
    ref = saved.ref()
    assert ref == {"experiment": "iris-quick", "run_id": "20261201T000000-ab12", "results_dir": str(tmp_path / "run")}
    assert len(json.dumps(ref)) < 200  # an XCom of ids, never the spec or the features
    assert SweepContext.load(ref) == saved
    assert SweepContext.load(SweepRef(**ref)) == saved
    assert SweepContext.load(tmp_path / "run") == saved


def test_derived_values(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert ctx.experiment_spec.name == "iris-quick" and ctx.metric == "accuracy"
    assert ctx.timeout_minutes == 7.0
    assert ctx.data_fingerprint == "f" * 16
    assert ctx.results_path == tmp_path / "run"


def test_a_retrain_context_round_trips(tmp_path: Path) -> None:
    retraining = Retraining(champion=Champion(version="3", features=["a"]), drifted_features=["b"], warm_started_trials=4)
    saved = context(tmp_path, holdout_path=str(tmp_path / "h.parquet"), retraining=retraining).save()
    assert SweepContext.load(saved.ref()).retraining == retraining


def test_a_missing_context_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no sweep context at .*nowhere/context.json"):
        SweepContext.load({"experiment": "x", "run_id": "y", "results_dir": str(tmp_path / "nowhere")})


def test_unknown_fields_and_bad_refs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="typo"):
        context(tmp_path, typo=1)
    with pytest.raises(ValidationError, match="results_dir"):
        SweepContext.load({"experiment": "x", "run_id": "y"})
