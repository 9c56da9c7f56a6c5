"""retrain's own tasks: prepare (the champion's search, warm-started; or continue a round) and decide."""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from mlfleet.airflow.rounds import EndRoundOperator
from mlfleet.airflow.sweep_tasks import start_round
from mlfleet.config import get_settings


def _prepare_retrain(params: dict[str, Any], run_id: str) -> Any:
    from mlfleet import retraining
    from mlfleet.sweep import run_id_from_airflow

    return retraining.prepare(params, settings=get_settings(), run_id=run_id_from_airflow(run_id))


@task
def prepare(params: dict[str, Any] | None = None, run_id: str | None = None, ti: Any = None) -> list[dict[str, Any]]:
    return start_round(params or {}, str(run_id), ti, _prepare_retrain)


class DecideRetrain(EndRoundOperator):
    """end_round of retrain: after the last round, challenger vs champion on the same holdout."""

    def finish(self, sweep: Any) -> dict[str, Any]:
        from mlfleet import retraining

        return retraining.decide(sweep, settings=get_settings())
