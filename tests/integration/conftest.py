"""Integration fixtures: real Redis and PostgreSQL servers, started by the tests themselves.

The servers live in services.py (pytest puts this directory on sys.path, so it imports as
`services`); each is started once per session, on demand, and stopped at the end.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from services import postgres_server, redis_server


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
