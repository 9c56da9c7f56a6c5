"""Per-backend task arguments: only the sweep's backend gets batches; the waiter covers the budget."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))

from backend_inputs import make_batch, make_context  # noqa: E402

from mlfleet.config import Settings  # noqa: E402
from mlfleet.sweep import dispatch  # noqa: E402


def test_only_the_chosen_backend_gets_the_batches(tmp_path: Path) -> None:
    batches = [make_batch()]
    settings = Settings(home=tmp_path)
    assert dispatch.local_batches(make_context("local"), batches) == batches
    assert dispatch.local_batches(make_context("sagemaker"), batches) == []
    assert dispatch.sagemaker_jobs(make_context("local"), batches, settings=settings, send=False) == []
    assert dispatch.kubernetes_pods(make_context("sagemaker"), batches, settings=settings, send=False) == []


def test_waiter_attempts_cover_the_budget_and_the_spot_wait(tmp_path: Path) -> None:
    context = make_context("sagemaker")  # budget.timeout_minutes = 30
    on_demand = Settings(home=tmp_path, sagemaker_check_interval=30)
    assert dispatch.waiter_attempts(context, on_demand) == math.ceil(30 * 60 / 30) + 10
    spot = Settings(home=tmp_path, sagemaker_check_interval=30, sagemaker_spot=True, sagemaker_spot_wait_seconds=3600)
    assert dispatch.waiter_attempts(context, spot) == math.ceil((30 * 60 + 3600) / 30) + 10
    assert dispatch.waiter_attempts(context, Settings(home=tmp_path, sagemaker_check_interval=7)) == math.ceil(1800 / 7) + 10
