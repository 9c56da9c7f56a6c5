"""Point-in-time training sets, labels and recent feature windows, read through Feast.

A customer with no feature row in a view's TTL before its timestamp had no events in that window,
so its counts and sums are 0: missing values in a training set are filled with 0.
"""

from __future__ import annotations

from typing import Any

from mlfleet.config import Settings
from mlfleet.features import tables
from mlfleet.features.repository import online_views, store

ENTITY_TIMESTAMP = "event_timestamp"


def service_features(settings: Settings, service: str) -> list[str]:
    """Feature column names a feature service yields in a training set."""
    return _service_features(store(settings), service)


def _service_features(fs: Any, service: str) -> list[str]:
    from feast.errors import FeatureServiceNotFoundException

    try:
        svc = fs.get_feature_service(service)
    except FeatureServiceNotFoundException:
        known = sorted(s.name for s in fs.list_feature_services())
        raise LookupError(f"dataset.feature_service: unknown feature service {service!r}; known: {known}") from None
    return [f.name for projection in svc.feature_view_projections for f in projection.features]


def training_set(settings: Settings, service: str, *, entity_df: Any) -> Any:
    """Point-in-time-correct join of the service's features onto labelled entity rows.

    A customer with no feature row in a view's TTL before its timestamp had no events in that
    window, so its counts and sums are 0: missing values are filled with 0.
    """
    fs = store(settings)
    features = _service_features(fs, service)
    frame = fs.get_historical_features(entity_df=entity_df, features=fs.get_feature_service(service)).to_df()
    frame[features] = frame[features].astype("float64").fillna(0.0)
    return frame.sort_values([ENTITY_TIMESTAMP, "customer_id"]).reset_index(drop=True)


def read_labels(settings: Settings) -> Any:
    """The labelled entity rows the ETL wrote (customer_id, event_timestamp, labels)."""
    import pandas as pd

    path = settings.labels_uri
    tables.connect(settings)
    if not tables.parquet_files(path):
        raise FileNotFoundError(f"no labels under {path}; run the feature_pipeline DAG (or `mlfleet demo`) first")
    frame = tables.read_parquet(path)
    frame = frame.drop(columns=[c for c in ("snapshot_date",) if c in frame.columns])
    frame[ENTITY_TIMESTAMP] = pd.to_datetime(frame[ENTITY_TIMESTAMP], utc=True)
    return frame


def recent_features(settings: Settings, *, features: list[str], days: int) -> Any:
    """The newest `days` of the offline feature tables holding `features`, for drift checks.

    Views differ in row counts, so columns are padded with NaN; drift statistics drop NaNs.
    """
    import pandas as pd

    columns: dict[str, Any] = {}
    for view in online_views(store(settings)):
        wanted = [f.name for f in view.features if f.name in features]
        if not wanted:
            continue
        table = tables.read_parquet(view.batch_source.path, columns=[*wanted, "feature_date"])
        stamp = pd.to_datetime(table["feature_date"].astype(str))
        recent = table[stamp > stamp.max() - pd.Timedelta(days=days)]
        columns.update({name: recent[name].astype("float64").reset_index(drop=True) for name in wanted})
    missing = sorted(set(features) - set(columns))
    if missing:
        raise LookupError(f"no online feature view holds {missing}")
    return pd.DataFrame(columns)
