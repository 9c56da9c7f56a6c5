"""Loading a spec's dataset (builtin, Parquet, CSV) and choosing its feature columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_iris

from mlfleet.sweep.datasets import BUILTINS, feature_columns, load_frame
from mlfleet.spec import SpecError, parse_spec


def spec_for(dataset: dict[str, Any], target: str = "label", task: str = "classification") -> Any:
    return parse_spec({
        "name": "data", "task": task, "target": target, "metric": "accuracy", "dataset": dataset,
        "models": [{"type": "logistic_l1", "params": {"C": [1.0]}}],
    })


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "city": ["x", "y", "x", "y"], "label": [0, 1, 0, 1]})


def test_builtin_loads_as_scikit_learn_frames_it(settings) -> None:
    got = load_frame(spec_for({"builtin": "iris"}, target="target"), settings)
    expected = load_iris(as_frame=True).frame
    pd.testing.assert_frame_equal(got, expected)
    assert feature_columns(spec_for({"builtin": "iris"}, target="target"), got) == list(expected.columns[:-1])


def test_unknown_builtin(settings) -> None:
    with pytest.raises(SpecError) as info:
        load_frame(spec_for({"builtin": "mnist"}), settings)
    assert info.value.field == "dataset.builtin"
    assert "'mnist'" in info.value.message and all(name in info.value.message for name in BUILTINS)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_path_dataset_round_trips(settings, tmp_path: Path, frame: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
    got = load_frame(spec_for({"path": str(path)}), settings)
    pd.testing.assert_frame_equal(got, frame)


def test_path_with_other_suffix(settings, tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text("{}")
    with pytest.raises(SpecError) as info:
        load_frame(spec_for({"path": str(path)}), settings)
    assert info.value.field == "dataset.path"
    assert ".parquet or .csv" in info.value.message


def test_non_numeric_feature_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(SpecError) as info:
        feature_columns(spec_for({"path": "x.csv"}), frame)
    assert info.value.field == "dataset"
    assert "'city'" in info.value.message


def test_listed_features_are_used(frame: pd.DataFrame) -> None:
    assert feature_columns(spec_for({"path": "x.csv", "features": ["b", "a"]}), frame) == ["b", "a"]


def test_listed_feature_not_a_column(frame: pd.DataFrame) -> None:
    with pytest.raises(SpecError) as info:
        feature_columns(spec_for({"path": "x.csv", "features": ["a", "zz"]}), frame)
    assert info.value.field == "dataset.features"
    assert "'zz'" in info.value.message


def test_target_cannot_be_a_feature(frame: pd.DataFrame) -> None:
    with pytest.raises(SpecError) as info:
        feature_columns(spec_for({"path": "x.csv", "features": ["a", "label"]}), frame)
    assert info.value.field == "dataset.features"


def test_target_not_a_column(frame: pd.DataFrame) -> None:
    with pytest.raises(SpecError) as info:
        feature_columns(spec_for({"path": "x.csv"}, target="churned"), frame)
    assert info.value.field == "target"
    assert "'churned'" in info.value.message and "'label'" in info.value.message
