"""Load a spec's dataset (Feast feature service, file, or scikit-learn builtin) as one frame."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec, SpecError

# Loaders that ship their data inside scikit-learn (no download at run time).
BUILTINS = ("breast_cancer", "diabetes", "digits", "iris", "wine", "linnerud")
NON_FEATURE_COLUMNS = ("customer_id", "event_timestamp")


def load_frame(spec: ExperimentSpec, settings: Settings) -> Any:
    """The raw training frame: features, the target, and (Feast) entity key and timestamp."""
    dataset = spec.dataset
    if dataset.builtin:
        if dataset.builtin not in BUILTINS:
            raise SpecError("dataset.builtin", f"unknown dataset {dataset.builtin!r}; choose one of {', '.join(BUILTINS)}")
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{dataset.builtin}")(as_frame=True).frame
    if dataset.path:
        return _read_path(check_data_path(dataset.path, settings))
    from mlfleet.features import training_sets as features

    try:
        features.service_features(settings, dataset.feature_service or "")
    except LookupError as err:
        raise SpecError("dataset.feature_service", str(err).split(": ", 1)[-1]) from None
    try:
        labels = features.read_labels(settings)
    except FileNotFoundError as err:
        raise SpecError("dataset.feature_service", str(err)) from None
    if spec.target not in labels.columns:
        raise SpecError("target", f"{spec.target!r} is not a label column; label columns: {sorted(set(labels.columns) - set(NON_FEATURE_COLUMNS))}")
    entity_df = labels[[*NON_FEATURE_COLUMNS, spec.target]]
    return features.training_set(settings, dataset.feature_service or "", entity_df=entity_df)


def check_data_path(raw: str, settings: Settings) -> Path:
    """The dataset path resolved, if it lies inside one of the allowed data roots (MLFLEET_DATA_ROOTS)."""
    path = Path(raw).expanduser().resolve()
    roots = settings.allowed_data_roots
    if not any(path == root or root in path.parents for root in roots):
        allowed = os.pathsep.join(str(r) for r in roots)
        raise SpecError("dataset.path", f"{raw!r} is outside the allowed data roots ({allowed}); "
                                        "add its folder to MLFLEET_DATA_ROOTS")
    return path


def _read_path(path: Path) -> Any:
    import pandas as pd

    if not path.exists():
        raise SpecError("dataset.path", f"{str(path)!r} does not exist")
    if path.suffix not in (".csv", ".parquet") and not path.is_dir():
        raise SpecError("dataset.path", f"{str(path)!r}: expected a .parquet or .csv file")
    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        kind = "CSV" if path.suffix == ".csv" else "Parquet"
        raise SpecError("dataset.path", f"{str(path)!r} is not a readable {kind} file: {str(err)[:200]}") from None


def feature_columns(spec: ExperimentSpec, frame: Any) -> list[str]:
    """The columns a model trains on; validated against the frame (numeric, present, not the target)."""
    if spec.target not in frame.columns:
        raise SpecError("target", f"{spec.target!r} is not a column of the dataset; columns: {list(frame.columns)[:20]}")
    if spec.dataset.features:
        missing = [c for c in spec.dataset.features if c not in frame.columns]
        if missing:
            raise SpecError("dataset.features", f"not columns of the dataset: {missing}")
        columns = list(spec.dataset.features)
    else:
        columns = [c for c in frame.columns if c != spec.target and c not in NON_FEATURE_COLUMNS]
    if spec.target in columns:
        raise SpecError("dataset.features", f"the target {spec.target!r} cannot also be a feature")
    non_numeric = [c for c in columns if not _is_numeric(frame[c])]
    if non_numeric:
        raise SpecError("dataset", f"non-numeric feature columns {non_numeric}; encode them or list numeric dataset.features")
    if not columns:
        raise SpecError("dataset", "no feature columns left besides the target")
    return columns


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column))
