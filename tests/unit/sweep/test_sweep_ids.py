from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from mlfleet.backends import naming
from mlfleet.sweep import new_run_id, run_id_from_airflow
from mlfleet.sweep.rounds import continuation_run_id


@pytest.mark.parametrize("dag_run_id,stamp", [
    ("manual__2026-11-23T10:00:00+00:00", "20261123T100000"),
    ("scheduled__2026-08-01T00:00:00.123456+00:00", "20260801T000000"),
    ("asset_triggered__2026-09-03T04:05:06+00:00", "20260903T040506"),
    ("my run/with spaces", "run"),
])
def test_run_id_from_airflow_is_safe_and_deterministic(dag_run_id: str, stamp: str) -> None:
    run_id = run_id_from_airflow(dag_run_id)
    assert run_id == run_id_from_airflow(dag_run_id)  # a retried prepare lands in the same folder
    assert re.fullmatch(rf"{stamp}-[0-9a-f]{{16}}", run_id), run_id


def test_two_airflow_runs_at_the_same_second_get_different_ids() -> None:
    a = run_id_from_airflow("manual__2026-11-23T10:00:00+00:00")
    b = run_id_from_airflow("manual__2026-11-23T10:00:00.5+00:00")
    assert a != b and a[:15] == b[:15]


def test_run_ids_that_shared_a_folder_with_16_bits_no_longer_collide() -> None:
    # Both were 20261123T100000-e1ef: one folder, one Optuna study and the same job names for two runs.
    a = run_id_from_airflow("manual__2026-11-23T10:00:00.000064+00:00")
    b = run_id_from_airflow("manual__2026-11-23T10:00:00.000169+00:00")
    assert a[:20] == b[:20] == "20261123T100000-e1ef"
    assert a != b


def test_every_name_built_from_the_longer_id_still_fits() -> None:
    run_id = run_id_from_airflow("manual__2026-11-23T10:00:00.000064+00:00")
    longest = "churn-" + "x" * 41 + "1"  # 48 characters, the spec's maximum
    assert naming.label_problems(naming.labels(experiment=longest, run_id=run_id, batch_id="r12-abcdef0123")) == []
    assert naming.labels(experiment=longest, run_id=run_id, batch_id="r0-a")["mlfleet.io/run"] == run_id  # not cut
    name = naming.job_name(experiment=longest, run_id=run_id, batch_id="r12-abcdef0123", attempt=naming.MAX_ATTEMPTS)
    assert len(name) <= naming.MAX_NAME and naming.is_dns_label(name)
    assert len(continuation_run_id(longest, run_id, 9999)) <= 250  # Airflow's run id column


def test_new_run_id_sorts_by_time_and_differs_by_salt() -> None:
    now = datetime(2026, 12, 1, 9, 30, 5, tzinfo=timezone.utc)
    assert new_run_id(now, "a").startswith("20261201T093005-")
    assert new_run_id(now, "a") != new_run_id(now, "b")
    assert new_run_id(now, "a") < new_run_id(datetime(2026, 12, 1, 9, 30, 6, tzinfo=timezone.utc), "a")
