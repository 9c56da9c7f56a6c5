"""Feast helpers: apply the repo, materialize an interval, build point-in-time training sets.

Everything goes through Feast's SDK; the feature views, their sources and services are read
from the Feast registry, so a new view file flows through without code changes here.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from mlfleet import feature_storage
from mlfleet.config import Settings

ENTITY_TIMESTAMP = "event_timestamp"


@contextlib.contextmanager
def _repo_on_path(repo: Path) -> Iterator[None]:
    # Feast imports repo files as top-level modules (entities, sources, ...): drop any cached
    # module of the same name so a re-apply (or another repo) reads the files as they are now.
    for path in repo.glob("*.py"):
        sys.modules.pop(path.stem, None)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(repo))


def store(settings: Settings) -> Any:
    """A FeatureStore on the configured repo, its feature root (local or S3) made reachable first."""
    from feast import FeatureStore

    feature_storage.connect(settings)
    return FeatureStore(repo_path=str(settings.feature_repo))


def apply(settings: Settings) -> list[str]:
    """`feast apply`: register every object the repo defines; returns the feature view names."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    feature_storage.connect(settings)
    repo = settings.feature_repo
    (settings.home_dir / "feast").mkdir(parents=True, exist_ok=True)  # the online store, always local
    config = load_repo_config(repo, repo / "feature_store.yaml")
    with _repo_on_path(repo):
        apply_total(config, repo, skip_source_validation=True)
    return [view.name for view in store(settings).list_feature_views()]


def online_views(fs: Any) -> list[Any]:
    """The store's views that serve online (the raw `events` view does not)."""
    return [v for v in fs.list_feature_views() if v.online]


def materialize(settings: Settings, *, start: datetime, end: datetime) -> dict[str, int]:
    """Load the interval's offline rows (start <= event_timestamp < end) into the online store.

    The rows are already transformed by the Spark job, so they go to the online store as they
    are (`write_to_online_store`); `FeatureStore.materialize` would run each view's
    transformation a second time on its own output.
    """
    import pandas as pd

    fs = store(settings)
    written: dict[str, int] = {}
    for view in online_views(fs):
        path = view.batch_source.path
        if not feature_storage.parquet_files(path):
            raise FileNotFoundError(f"feature view {view.name}: no offline table at {path}; run the feature job first")
        ts = view.batch_source.timestamp_field
        # Prune partitions by day first (a day's rows are stamped at the next midnight), then exact.
        first, last = (start - timedelta(days=1)).date().isoformat(), end.date().isoformat()
        frame = feature_storage.read_parquet(path, filters=[("feature_date", ">=", first), ("feature_date", "<=", last)])
        stamps = pd.to_datetime(frame[ts], utc=True)
        frame = frame[(stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))]
        frame = frame.drop(columns=["feature_date"]).assign(**{ts: stamps})
        if len(frame):
            fs.write_to_online_store(view.name, frame)
        written[view.name] = int(len(frame))
    return written


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
    feature_storage.connect(settings)
    if not feature_storage.parquet_files(path):
        raise FileNotFoundError(f"no labels under {path}; run the feature_pipeline DAG (or `mlfleet demo`) first")
    frame = feature_storage.read_parquet(path)
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
        table = feature_storage.read_parquet(view.batch_source.path, columns=[*wanted, "feature_date"])
        stamp = pd.to_datetime(table["feature_date"].astype(str))
        recent = table[stamp > stamp.max() - pd.Timedelta(days=days)]
        columns.update({name: recent[name].astype("float64").reset_index(drop=True) for name in wanted})
    missing = sorted(set(features) - set(columns))
    if missing:
        raise LookupError(f"no online feature view holds {missing}")
    return pd.DataFrame(columns)
