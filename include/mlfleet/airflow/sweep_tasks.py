"""experiment_sweep's own tasks: prepare (validate and stage, or continue a round) and finalize."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from airflow.sdk import task

from mlfleet.airflow.failures import fail_without_retry
from mlfleet.airflow.rounds import EndRoundOperator
from mlfleet.config import PROJECT_ROOT, get_settings
from mlfleet.spec import SpecError


def resolve_spec_source(spec: Any) -> Any:
    """A spec param is an object, or a path (relative paths also tried from the project root)."""
    if isinstance(spec, str) and "\n" not in spec and not Path(spec).is_file() and (PROJECT_ROOT / spec).is_file():
        return str(PROJECT_ROOT / spec)
    return spec


def start_round(params: dict[str, Any], run_id: str, ti: Any, prepare_sweep: Callable[[dict[str, Any], str], Any]
                ) -> list[dict[str, Any]]:
    """The first task of any sweep run; returns the round's batches (what run_batch maps over).

    Round 0 prepares the sweep (`prepare_sweep(params, run_id)`; a spec error fails the task, no
    retry); a continuation run (conf `sweep`, `round`) loads it. The sweep's ref and the round go
    to XCom for run_batch and end_round.
    """
    from mlfleet.sweep import SweepContext, propose

    if params.get("sweep"):
        context, round_index = SweepContext.load(params["sweep"]), int(params.get("round") or 0)
    else:
        from mlfleet.sweep.progress import record_airflow_run

        with fail_without_retry():
            context, round_index = prepare_sweep(params, run_id), 0
        record_airflow_run(context.results_path, dag_id=str(ti.dag_id), run_id=run_id)
    batches = propose(context, round_index=round_index, settings=get_settings())
    ti.xcom_push(key="sweep", value=context.ref())
    ti.xcom_push(key="round", value=round_index)
    return batches


def spec_source(params: dict[str, Any]) -> Any:
    """What a run sweeps: the pasted `spec` (text, an object or a path) when given, else the chosen `spec_file`."""
    spec = params.get("spec")
    if spec is not None and not (isinstance(spec, str) and not spec.strip()):
        return resolve_spec_source(spec)
    if not params.get("spec_file"):
        raise SpecError("spec", "no spec given; choose a spec_file or paste a spec")
    return str(PROJECT_ROOT / params["spec_file"])


def _prepare_experiment(params: dict[str, Any], run_id: str) -> Any:
    """Load the spec, apply the form's overrides (n_trials, max_parallel, timeout_minutes, backend),
    then prepare; the overridden spec is validated as a whole, so a bad override names its field."""
    from mlfleet import sweep
    from mlfleet.spec import apply_overrides, given_overrides, load_spec_data

    spec = apply_overrides(load_spec_data(spec_source(params)), given_overrides(params))
    return sweep.prepare(spec, settings=get_settings(), run_id=sweep.run_id_from_airflow(run_id))


@task
def prepare(params: dict[str, Any] | None = None, run_id: str | None = None, ti: Any = None) -> list[dict[str, Any]]:
    """Round 0 validates the spec (`spec`, else `spec_file`, with the overrides) and stages the data;
    later rounds tell Optuna and ask again."""
    return start_round(params or {}, str(run_id), ti, _prepare_experiment)


class FinalizeSweep(EndRoundOperator):
    """end_round of experiment_sweep: the last round writes the leaderboard, the plot, the MLflow
    runs and registers the best model; its XCom says where they are."""

    def finish(self, sweep: Any) -> dict[str, Any]:
        from mlfleet.sweep import finalize
        from mlfleet.sweep.finalize import summary

        return summary(finalize(sweep, settings=get_settings()))
