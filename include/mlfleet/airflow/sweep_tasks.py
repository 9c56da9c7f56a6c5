"""experiment_sweep's own tasks: prepare (validate and stage, or continue a round) and finalize."""

from __future__ import annotations

from typing import Any, Callable

from airflow.sdk import task

from mlfleet.airflow.failures import fail_without_retry
from mlfleet.airflow.rounds import EndRoundOperator
from mlfleet.config import get_settings
from mlfleet.spec import SpecError


def start_round(params: dict[str, Any], run_id: str, ti: Any, prepare_sweep: Callable[[dict[str, Any], str], Any]
                ) -> list[dict[str, Any]]:
    """The first task of any sweep run; returns the round's batches (what run_batch maps over).

    Round 0 prepares the sweep (`prepare_sweep(params, run_id)`, which records this run as the
    sweep's owner); a continuation run (conf `sweep`, `round`, `proof`) continues it only once
    `mlfleet.sweep.continuation` accepted the conf. A spec error, a refused conf or a sweep folder
    another run owns fails the task at once (no retry: a retry cannot fix them) and writes nothing.
    The sweep's ref and the round go to XCom for run_batch and end_round.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from mlfleet.sweep import propose
    from mlfleet.sweep.context import AirflowRun
    from mlfleet.sweep.continuation import ContinuationRefused, accept_continuation
    from mlfleet.sweep.prepare import SweepFolderTaken, started_by

    settings, dag_id = get_settings(), str(ti.dag_id)
    if params.get("sweep") is not None:
        try:
            context, round_index = accept_continuation(params, dag_id=dag_id, airflow_run_id=run_id, settings=settings)
        except ContinuationRefused as err:
            raise AirflowFailException(f"refused continuation conf: {err}") from None
    else:
        from mlfleet.sweep.progress import record_airflow_run

        try:
            with fail_without_retry(), started_by(AirflowRun(dag_id=dag_id, run_id=run_id)):
                context, round_index = prepare_sweep(params, run_id), 0
        except SweepFolderTaken as err:
            raise AirflowFailException(str(err)) from None
        record_airflow_run(context.results_path, dag_id=dag_id, run_id=run_id)
    batches = propose(context, round_index=round_index, settings=settings)
    ti.xcom_push(key="sweep", value=context.ref())
    ti.xcom_push(key="round", value=round_index)
    return batches


def spec_data(params: dict[str, Any]) -> dict[str, Any]:
    """What a run sweeps, as the spec's fields: the pasted `spec` (YAML or JSON text, or an object) when
    given, else the chosen `spec_file`, one of the project's spec files. The conf comes from whoever
    may trigger the DAG, so no string in it is ever opened as a path (mlfleet.spec.loading)."""
    from mlfleet.spec.loading import load_project_spec, load_spec_param

    spec = params.get("spec")
    if spec is not None and not (isinstance(spec, str) and not spec.strip()):
        return load_spec_param(spec)
    if not params.get("spec_file"):
        raise SpecError("spec", "no spec given; choose a spec_file or paste a spec")
    return load_project_spec(params["spec_file"])


def _prepare_experiment(params: dict[str, Any], run_id: str) -> Any:
    """Load the spec, apply the form's overrides (n_trials, max_parallel, timeout_minutes, backend),
    then prepare; the overridden spec is validated as a whole, so a bad override names its field."""
    from mlfleet import sweep
    from mlfleet.spec import apply_overrides, given_overrides

    spec = apply_overrides(spec_data(params), given_overrides(params))
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
