"""The Feast repository: open the store, apply the repo, materialize an interval online.

Everything goes through Feast's SDK; the feature views, their sources and services are read
from the Feast registry, so a new view file flows through without code changes here.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import yaml

from mlfleet.config import Settings
from mlfleet.features import tables
from mlfleet.spec import SpecError

# `${NAME}` as Feast expands it (os.path.expandvars leaves an unset one as it is).
_VARIABLE = re.compile(r"\$\{(\w+)\}")


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


def repo_config(settings: Settings) -> Any:
    """Feast's RepoConfig of the configured file (`MLFLEET_FEAST_CONFIG`), read as Feast reads it.

    Feast keeps an unset `${NAME}` as literal text, which would surface later as a Redis host or a
    registry path named `${NAME}`; such a file is refused here, naming the variable.
    """
    from feast.repo_config import load_repo_config

    tables.connect(settings)  # exports MLFLEET_HOME and MLFLEET_FEATURE_ROOT, which the files expand
    path = settings.feast_config_path
    unset = sorted({name for value in _strings(yaml.safe_load(path.read_text()))
                    for name in _VARIABLE.findall(value) if name not in os.environ})
    if unset:
        raise SpecError("feast_config", f"{path} names unset environment variable(s) {', '.join(unset)}; "
                                        "export them where the task runs")
    return load_repo_config(settings.feature_repo, path)


def _strings(node: Any) -> Iterator[str]:
    """Every string value of a parsed YAML document (comments are gone by then)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def store(settings: Settings) -> Any:
    """A FeatureStore on the configured repo and file, its feature root (local or S3) made reachable first."""
    from feast import FeatureStore

    return FeatureStore(repo_path=str(settings.feature_repo), config=repo_config(settings))


def apply(settings: Settings) -> list[str]:
    """`feast apply`: register every object the repo defines; returns the feature view names."""
    from feast.repo_operations import apply_total

    config = repo_config(settings)
    repo = settings.feature_repo
    (settings.home_dir / "feast").mkdir(parents=True, exist_ok=True)  # the SQLite online store's directory
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
