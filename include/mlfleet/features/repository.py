"""The Feast repository: open the store, apply the repo, materialize an interval online.

Everything goes through Feast's SDK; the feature views, their sources and services are read
from the Feast registry, so a new view file flows through without code changes here.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from mlfleet.config import Settings
from mlfleet.features import tables


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

    tables.connect(settings)
    return FeatureStore(repo_path=str(settings.feature_repo))


def apply(settings: Settings) -> list[str]:
    """`feast apply`: register every object the repo defines; returns the feature view names."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    tables.connect(settings)
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
        if not tables.parquet_files(path):
            raise FileNotFoundError(f"feature view {view.name}: no offline table at {path}; run the feature job first")
        ts = view.batch_source.timestamp_field
        # Prune partitions by day first (a day's rows are stamped at the next midnight), then exact.
        first, last = (start - timedelta(days=1)).date().isoformat(), end.date().isoformat()
        frame = tables.read_parquet(path, filters=[("feature_date", ">=", first), ("feature_date", "<=", last)])
        stamps = pd.to_datetime(frame[ts], utc=True)
        frame = frame[(stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))]
        frame = frame.drop(columns=["feature_date"]).assign(**{ts: stamps})
        if len(frame):
            fs.write_to_online_store(view.name, frame)
        written[view.name] = int(len(frame))
    return written
