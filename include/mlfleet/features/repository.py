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
from mlfleet.features.duckdb_limits import bound_duckdb
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

    bound_duckdb(settings)
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


# Rows per write_to_online_store call: one chunk's pandas frame and its protobuf values stay a few
# MB whatever the number of entities (a chunk is ~0.5 s of SQLite writes on this machine).
MATERIALIZE_CHUNK_ROWS = 20_000


def materialize(settings: Settings, *, start: datetime, end: datetime,
                chunk_rows: int = MATERIALIZE_CHUNK_ROWS) -> dict[str, int]:
    """Write the newest row per entity of each online view in [start, end) to the online store.

    The online store keeps one row per entity, so only the newest row of the interval goes there:
    O(entities) writes, not O(days x entities). The newest rows come from the configured offline
    store's `pull_latest_from_table_or_query`, the query Feast's own `materialize` runs (DuckDB
    locally, Spark in production): the engine that holds the data reduces it before it moves. They are
    written in chunks of `chunk_rows`. `FeatureStore.materialize` itself is not used: it would run
    each batch view's transformation a second time on the Spark job's output.
    Returns the rows written per view.
    """
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if end <= start:
        raise ValueError(f"materialize: end {end.isoformat()} is not after start {start.isoformat()}")
    fs = store(settings)
    offline_store = get_offline_store_from_config(fs.config.offline_store)
    written: dict[str, int] = {}
    for view in online_views(fs):
        source = view.batch_source
        if not tables.parquet_files(source.path):
            raise FileNotFoundError(f"feature view {view.name}: no offline table at {source.path}; run the feature job first")
        newest = offline_store.pull_latest_from_table_or_query(
            config=fs.config, data_source=source, join_key_columns=view.join_keys,
            feature_name_columns=[f.name for f in view.features], timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column or None,
            # Feast's interval is closed; ours is half-open, as a day's rows are stamped at midnight.
            start_date=start, end_date=end - timedelta(microseconds=1),
        ).to_arrow()
        for batch in newest.to_batches(max_chunksize=chunk_rows):
            fs.write_to_online_store(view.name, batch.to_pandas())
        written[view.name] = int(newest.num_rows)
    return written
