"""Integration fixtures: real Redis, PostgreSQL and a moto server, started by the tests themselves.

The servers live in services.py (pytest puts this directory on sys.path, so it imports as
`services`); each is started once per session, on demand, and stopped at the end.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from services import AwsEmulator, aws_emulator, postgres_server, redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1: "127.0.0.1:<port>" (no persistence)."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL cluster: postgresql+psycopg2://mlfleet@127.0.0.1:<port>/mlfleet_test."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def aws_server() -> Iterator[AwsEmulator]:
    """One moto server (with the SageMaker runtime stand-in) for the session."""
    with aws_emulator() as emulator:
        yield emulator


@pytest.fixture
def aws(aws_server: AwsEmulator, monkeypatch: pytest.MonkeyPatch) -> AwsEmulator:
    """The emulator, with Airflow's `aws_default` connection and the remote-backend settings pointed at it."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_server.connection_uri)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": aws_server.region}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLEET_OBJECT_STORE_URI", f"s3://{aws_server.bucket}/mlfleet")
    monkeypatch.setenv("MLFLEET_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/mlfleet-sagemaker")
    monkeypatch.setenv("MLFLEET_TRIAL_IMAGE", "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfleet-trial:test")
    monkeypatch.setenv("MLFLEET_SAGEMAKER_CHECK_INTERVAL", "1")
    # The provider's CloudWatch log tailer re-describes only every 30 s; moto has no job logs anyway.
    monkeypatch.setenv("MLFLEET_SAGEMAKER_PRINT_LOG", "false")
    return aws_server
