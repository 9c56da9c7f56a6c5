"""The results tests' settings: real MLflow on SQLite under a temporary MLFLEET_HOME, one store per
test module (creating one costs seconds), in place of the suite's per-test `settings`."""

import pytest


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    from mlfleet.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLEET_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLEET_MLFLOW_TRACKING_URI", raising=False)
        yield get_settings()
