"""The project's Feast repo served from a real Redis online store, through production's own config.

feature_repo/ as checked in, with MLFLEET_FEAST_CONFIG=feature_store.production.yaml and
MLFLEET_REDIS_CONNECTION at the `redis_url` server: feast apply, a small offline table per online
view in the layout the ETL writes, materialize, then the churn_v1 feature service reads back
exactly the newest day's values from Redis. Also: the file is refused while a variable it names
is unset, and a config file that does not exist names MLFLEET_FEAST_CONFIG.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_rows import VIEWS, spend_values

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = "feature_store.production.yaml"
CUSTOMERS = [1, 2, 3, 4, 5]
DAYS = [date(2026, 8, 1), date(2026, 8, 2), date(2026, 8, 3)]
UNKNOWN = 999  # never written

pytestmark = pytest.mark.slow


def write_offline_table(root: Path, view: str) -> None:
    """`<offline_dir>/<view>/feature_date=YYYY-MM-DD/*.parquet`, stamped at the next midnight UTC."""
    make, types = VIEWS[view]
    schema = pa.schema([("customer_id", pa.int64()), *types.items(),
                        ("event_timestamp", pa.timestamp("us", tz="UTC")), ("feature_date", pa.string())])
    rows = [{"customer_id": c, **make(c, k),
             "event_timestamp": datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc),
             "feature_date": day.isoformat()}
            for k, day in enumerate(DAYS) for c in CUSTOMERS]
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_to_dataset(table, root / view, partition_cols=["feature_date"])


def test_feature_service_served_from_redis(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import feast.batch_feature_view  # noqa: F401 - its import-time simplefilter("once") first, then ours
    import redis

    from mlfleet.features import repository as features
    from mlfleet.config import get_settings

    # every load of the repo warns that BatchFeatureView is alpha (pytest restores filters after the test)
    warnings.filterwarnings("ignore", "Batch feature views are experimental", RuntimeWarning)
    host, port = redis_url.split(":")
    client = redis.Redis(host=host, port=int(port))
    client.flushdb()

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLEET_FEATURE_REPO", raising=False)  # the repo as checked in
    monkeypatch.setenv("MLFLEET_FEAST_CONFIG", PRODUCTION)
    monkeypatch.setenv("MLFLEET_REDIS_CONNECTION", redis_url)
    settings = get_settings()
    assert settings.feast_config_path == ROOT / "feature_repo" / PRODUCTION

    config = features.repo_config(settings)  # Feast's ${VAR} expansion of the file
    assert (config.online_store.type, config.online_store.connection_string) == ("redis", redis_url)
    assert config.registry.path == f"{tmp_path / 'home'}/feast/registry.db"  # the feature root, as locally

    names = features.apply(settings)
    assert {"customer_spend", "customer_channels"} <= set(names)
    assert {v.name for v in features.online_views(features.store(settings))} == set(VIEWS)
    assert client.dbsize() == 0  # apply writes the registry file, nothing online yet

    for view in VIEWS:
        write_offline_table(settings.offline_dir, view)
    assert sorted(p.name for p in (settings.offline_dir / "customer_spend").iterdir()) == [
        f"feature_date={d.isoformat()}" for d in DAYS]

    start = datetime(2026, 8, 2, tzinfo=timezone.utc)  # the first day's rows are stamped 2026-08-02 00:00
    written = features.materialize(settings, start=start, end=start + timedelta(days=len(DAYS)))
    # only the newest row per customer and view reaches the online store: O(entities), not O(days x entities)
    assert written == {view: len(CUSTOMERS) for view in VIEWS}

    # one Redis hash per entity key, holding every view's features
    assert client.dbsize() > 0
    assert len(list(client.scan_iter(count=1000))) == len(CUSTOMERS)

    fs = features.store(settings)
    service = fs.get_feature_service("churn_v1")
    online = fs.get_online_features(features=service,
                                    entity_rows=[{"customer_id": c} for c in [*CUSTOMERS, UNKNOWN]]).to_dict()
    newest = len(DAYS) - 1
    expected_columns = {name for make, _ in VIEWS.values() for name in make(1, 0)}
    assert set(online) == {"customer_id", *expected_columns}
    assert online["customer_id"] == [*CUSTOMERS, UNKNOWN]
    for make, _ in VIEWS.values():
        for feature in make(1, 0):
            got = online[feature]
            assert got[:-1] == pytest.approx([make(c, newest)[feature] for c in CUSTOMERS]), feature
            assert got[-1] is None, f"{feature} of a customer never written: {got[-1]!r}"

    # a stale offline rerun of an older day does not overwrite the newer online values
    features.materialize(settings, start=start, end=start + timedelta(days=1))
    again = fs.get_online_features(features=service, entity_rows=[{"customer_id": c} for c in CUSTOMERS]).to_dict()
    assert again["spend_28d"] == pytest.approx([spend_values(c, newest)["spend_28d"] for c in CUSTOMERS])


def test_production_config_needs_the_redis_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feast would keep `${MLFLEET_REDIS_CONNECTION}` as a literal Redis host; the file is refused instead."""
    from mlfleet.config import get_settings
    from mlfleet.features import repository as features
    from mlfleet.spec import SpecError

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLEET_FEATURE_REPO", raising=False)
    monkeypatch.setenv("MLFLEET_FEAST_CONFIG", PRODUCTION)
    monkeypatch.delenv("MLFLEET_REDIS_CONNECTION", raising=False)
    with pytest.raises(SpecError, match=r"^feast_config: .*feature_store\.production\.yaml names unset environment "
                                        r"variable\(s\) MLFLEET_REDIS_CONNECTION; export them"):
        features.store(get_settings())


def test_a_missing_config_file_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfleet.config import get_settings
    from mlfleet.features import repository as features

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLEET_FEATURE_REPO", raising=False)
    monkeypatch.setenv("MLFLEET_FEAST_CONFIG", "feature_store.staging.yaml")
    with pytest.raises(FileNotFoundError, match=r"^feast_config: .*feature_store\.staging\.yaml does not exist; "
                                                r"set MLFLEET_FEAST_CONFIG to a file of .*feature_repo "
                                                r"\(.*feature_store\.production\.yaml.*\) "
                                                r"or an absolute path"):
        features.apply(get_settings())
    # an absolute path is taken as it is
    elsewhere = tmp_path / "feature_store.yaml"
    elsewhere.write_text((ROOT / "feature_repo" / "feature_store.yaml").read_text())
    monkeypatch.setenv("MLFLEET_FEAST_CONFIG", str(elsewhere))
    assert get_settings().feast_config_path == elsewhere
