"""Where the feature data lives, and how the Airflow connection reaches Feast and pandas there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from mlfleet.backends.aws_environment import AWS_VARIABLES
from mlfleet.features import tables as feature_storage
from mlfleet.config import Settings, get_settings

STORE = "s3://acme-ml/mlfleet"
pytestmark = pytest.mark.usefixtures("restore_environment")


def test_feature_root_is_home_with_local_spark_and_the_object_store_on_emr(tmp_path: Path) -> None:
    local = Settings(home=tmp_path, object_store_uri=STORE)
    assert local.feature_root == str(tmp_path.resolve())
    assert local.labels_uri == f"{tmp_path.resolve()}/offline/labels"
    emr = Settings(home=tmp_path, object_store_uri=STORE + "/", etl_backend="emr_serverless")
    assert emr.feature_root == STORE
    assert emr.labels_uri == f"{STORE}/offline/labels"


def test_get_settings_exports_what_the_feast_repo_expands(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", STORE)
    monkeypatch.setenv("MLFLEET_ETL_BACKEND", "emr_serverless")
    get_settings()
    assert os.environ["MLFLEET_HOME"] == str(tmp_path.resolve())  # the online store stays local
    assert os.environ["MLFLEET_FEATURE_ROOT"] == STORE


def test_the_offline_store_follows_the_feature_root_unless_chosen(tmp_path: Path, monkeypatch) -> None:
    """DuckDB locally; dask (`file`) on S3, where DuckDB would need to download httpfs; a user's or
    a file's own choice wins."""
    import yaml

    from mlfleet.features import repository as features

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", STORE)
    monkeypatch.delenv("MLFLEET_FEAST_CONFIG", raising=False)
    monkeypatch.delenv("MLFLEET_FEAST_OFFLINE_STORE", raising=False)
    monkeypatch.delenv("MLFLEET_OFFLINE_STORE", raising=False)
    monkeypatch.delenv("MLFLEET_ETL_BACKEND", raising=False)
    assert features.repo_config(get_settings()).offline_store.type == "duckdb"
    monkeypatch.setenv("MLFLEET_ETL_BACKEND", "emr_serverless")
    get_settings()  # the earlier export for a local root (still in the environment) is not a choice
    assert os.environ["MLFLEET_FEAST_OFFLINE_STORE"] == "file"
    monkeypatch.setenv("MLFLEET_OFFLINE_STORE", "duckdb")  # httpfs downloadable here, say
    get_settings()
    assert os.environ["MLFLEET_FEAST_OFFLINE_STORE"] == "duckdb"
    monkeypatch.delenv("MLFLEET_OFFLINE_STORE")
    monkeypatch.setenv("MLFLEET_FEAST_OFFLINE_STORE", "duckdb")  # left by a task for another root
    get_settings()
    assert os.environ["MLFLEET_FEAST_OFFLINE_STORE"] == "file"

    monkeypatch.setenv("MLFLEET_FEAST_CONFIG", "feature_store.production.yaml")  # names `spark` itself
    get_settings()
    assert os.environ["MLFLEET_FEAST_OFFLINE_STORE"] == "spark"
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    with features._repo_on_path(get_settings().feature_repo):
        import sources

        assert isinstance(sources.offline_table("customer_spend"), SparkSource)  # the Spark store reads no other
    own = tmp_path / "feature_store.yaml"
    document = yaml.safe_load((Path(get_settings().feature_repo) / "feature_store.yaml").read_text())
    own.write_text(yaml.safe_dump({**document, "offline_store": {"type": "file"}}))
    monkeypatch.setenv("MLFLEET_FEAST_CONFIG", str(own))
    get_settings()
    assert os.environ["MLFLEET_FEAST_OFFLINE_STORE"] == "file"


def test_an_unset_offline_store_variable_is_refused(tmp_path: Path, monkeypatch) -> None:
    """Outside mlfleet (the `feast` CLI) nothing exports it: the file is refused, naming it."""
    from mlfleet.features import repository as features
    from mlfleet.spec import SpecError

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLEET_FEAST_CONFIG", raising=False)
    settings = get_settings()
    monkeypatch.setattr("mlfleet.features.tables.connect", lambda settings: None)  # no export, as by hand
    monkeypatch.delenv("MLFLEET_FEAST_OFFLINE_STORE")
    with pytest.raises(SpecError, match="unset environment variable\\(s\\) MLFLEET_FEAST_OFFLINE_STORE"):
        features.repo_config(settings)


def test_the_repo_sources_follow_the_feature_root(tmp_path: Path, monkeypatch) -> None:
    from mlfleet.features import repository as features

    monkeypatch.setenv("MLFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLEET_FEATURE_ROOT", STORE)
    settings = Settings(home=tmp_path)
    with features._repo_on_path(settings.feature_repo):
        import sources

        assert sources.raw_events.path == f"{STORE}/raw/events"
        assert sources.offline_table("customer_spend").path == f"{STORE}/offline/customer_spend"


def test_the_aws_connection_becomes_the_environment_boto3_s3fs_and_pyarrow_read(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FEATURES_AWS", json.dumps({
        "conn_type": "aws", "login": "AKIAEXAMPLE", "password": "secret",
        "extra": {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"}}))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "left over from an earlier task")
    settings = Settings(aws_conn_id="features_aws", object_store_uri=STORE, etl_backend="emr_serverless")
    feature_storage.connect(settings)
    assert {k: os.environ.get(k) for k in AWS_VARIABLES} == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": None,
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "FEAST_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    assert os.environ["MLFLEET_FEATURE_ROOT"] == STORE


def test_a_local_feature_root_exports_no_aws_settings(tmp_path: Path, monkeypatch) -> None:
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    feature_storage.connect(Settings(home=tmp_path, object_store_uri=STORE))
    assert not any(name in os.environ for name in AWS_VARIABLES)


def test_parquet_files_and_reads_of_a_partitioned_table(tmp_path: Path) -> None:
    table = tmp_path / "offline" / "customer_spend"
    assert feature_storage.parquet_files(str(table)) == []
    frame = pd.DataFrame({"customer_id": [1, 2, 3], "spend": [1.0, 2.0, 3.0],
                          "feature_date": ["2026-09-01", "2026-09-02", "2026-09-02"]})
    frame.to_parquet(table, partition_cols=["feature_date"])
    files = feature_storage.parquet_files(str(table))
    assert len(files) == 2 and all("feature_date=" in f for f in files)
    read = feature_storage.read_parquet(str(table), filters=[("feature_date", ">=", "2026-09-02")])
    assert sorted(read["customer_id"]) == [2, 3]
