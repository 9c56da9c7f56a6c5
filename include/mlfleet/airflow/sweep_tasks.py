"""experiment_sweep's own tasks: prepare (validate, stage) and finalize (leaderboard, registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import task

from mlfleet.airflow.failures import fail_without_retry
from mlfleet.config import PROJECT_ROOT, get_settings
from mlfleet.sweep.rounds import SWEEP_MAX_ROUNDS


def resolve_spec_source(spec: Any) -> Any:
    """A spec param is an object, or a path (relative paths also tried from the project root)."""
    if isinstance(spec, str) and "\n" not in spec and not Path(spec).is_file() and (PROJECT_ROOT / spec).is_file():
        return str(PROJECT_ROOT / spec)
    return spec


@task
def prepare(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, str]:
    """Validate and stage the sweep of the `spec` param; returns its SweepRef (a bad spec fails, no retry)."""
    from mlfleet import sweep

    with fail_without_retry():
        context = sweep.prepare(resolve_spec_source((params or {}).get("spec")), settings=get_settings(),
                                run_id=sweep.run_id_from_airflow(str(run_id)), round_limit=SWEEP_MAX_ROUNDS)
    return context.ref()


@task(trigger_rule="none_failed")
def finalize(sweep_ref: dict[str, str]) -> dict[str, Any]:
    from mlfleet.sweep import SweepContext, finalize as finalize_sweep
    from mlfleet.sweep.finalize import summary

    return summary(finalize_sweep(SweepContext.load(sweep_ref), settings=get_settings()))
