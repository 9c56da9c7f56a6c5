"""A batch as its remote backend's operator arguments; the SageMaker waiter covers the budget."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))

from backend_inputs import make_batch, make_context  # noqa: E402

from mlfleet.config import Settings  # noqa: E402
from mlfleet.sweep import dispatch  # noqa: E402

REMOTE = {"object_store_uri": "s3://bucket/prefix", "sagemaker_role_arn": "arn:aws:iam::123456789012:role/r"}


def test_sagemaker_arguments_name_the_batch_and_where_its_rows_land(tmp_path: Path) -> None:
    context, batch = make_context("sagemaker"), make_batch()
    arguments = dispatch.sagemaker_job(context, batch, settings=Settings(home=tmp_path, **REMOTE), send=False)
    assert arguments["batch_id"] == batch["batch_id"] and arguments["results_dir"] == context.results_dir
    assert arguments["config"]["TrainingJobName"].startswith("churn-baseline-")
    assert arguments == dispatch.sagemaker_job(context, batch, settings=Settings(home=tmp_path, **REMOTE), send=False)


def test_waiter_attempts_cover_the_budget_and_the_spot_wait(tmp_path: Path) -> None:
    context = make_context("sagemaker")  # budget.timeout_minutes = 30
    on_demand = Settings(home=tmp_path, sagemaker_check_interval=30)
    assert dispatch.waiter_attempts(context, on_demand) == math.ceil(30 * 60 / 30) + 10
    spot = Settings(home=tmp_path, sagemaker_check_interval=30, sagemaker_spot=True, sagemaker_spot_wait_seconds=3600)
    assert dispatch.waiter_attempts(context, spot) == math.ceil((30 * 60 + 3600) / 30) + 10
    assert dispatch.waiter_attempts(context, Settings(home=tmp_path, sagemaker_check_interval=7)) == math.ceil(1800 / 7) + 10
