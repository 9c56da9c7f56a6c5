"""Point-in-time training sets and labels, read through Feast.

A customer with no feature row in a view's TTL before its timestamp had no events in that window,
so its counts and sums are 0: missing values in a training set are filled with 0.
"""

from __future__ import annotations

from typing import Any

from mlfleet.config import Settings
from mlfleet.features import tables
from mlfleet.features.repository import store

ENTITY_TIMESTAMP = "event_timestamp"
ENTITY_ROW = "mlfleet_entity_row"  # numbers the entity rows through Feast's join


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
    """Point-in-time-correct join of the service's features onto labelled entity rows: one row each.

    A customer with no feature row in a view's TTL before its timestamp had no events in that
    window, so its counts and sums are 0: missing values are filled with 0.
    """
    import pandas as pd

    fs = store(settings)
    features = _service_features(fs, service)
    if ENTITY_ROW in entity_df.columns:
        raise ValueError(f"entity_df: column {ENTITY_ROW!r} is reserved for numbering its rows; rename it")
    rows = entity_df.reset_index(drop=True)
    numbered = rows.assign(**{ENTITY_ROW: range(len(rows))})
    svc = fs.get_feature_service(service)
    found = _historical(fs, numbered, svc, features)
    if len(found) < len(numbered):
        # Feast's dask store (`file`, for an s3:// feature root) drops an entity row when all of one
        # view's rows for it are older than the TTL; asked view by view, it loses only that view.
        found = pd.concat([_historical(fs, numbered, [f"{p.name_to_use()}:{f.name}" for f in p.features],
                                       [f.name for f in p.features])
                           for p in svc.feature_view_projections], axis=1)
    frame = rows.join(found[features].astype("float64")).fillna({name: 0.0 for name in features})
    frame[ENTITY_TIMESTAMP] = pd.to_datetime(frame[ENTITY_TIMESTAMP], utc=True)  # Spark's come back naive UTC
    return frame.sort_values([ENTITY_TIMESTAMP, "customer_id"]).reset_index(drop=True)


def _historical(fs: Any, entity_df: Any, features: Any, names: list[str]) -> Any:
    """Feast's point-in-time join of `features` (a service or refs), indexed by entity row number."""
    found = fs.get_historical_features(entity_df=entity_df, features=features).to_df()
    return found.set_index(ENTITY_ROW)[names]


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
