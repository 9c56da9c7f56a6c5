"""Settings for the backend builders, isolated from a developer's own MLFLEET_* environment."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from mlfleet.config import Settings


@pytest.fixture(scope="module", autouse=True)
def _no_ambient_mlfleet_env() -> Iterator[None]:
    """Settings read MLFLEET_* too: a developer's exported object store must not change a snapshot."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MLFLEET_") and name not in ("MLFLEET_HOME", "MLFLEET_LOCAL_WORKERS"):
                patch.delenv(name)
        yield


@pytest.fixture
def remote_settings() -> Settings:
    return Settings(object_store_uri="s3://bucket/prefix", sagemaker_role_arn="arn:aws:iam::123456789012:role/x",
                    trial_image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlfleet-trial:1.0")
