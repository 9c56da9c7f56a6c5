"""The `mlfleet` command: run local Airflow, the demo, and sweeps from a terminal.

Progress and logs go to stderr; `--json` output alone goes to stdout, so scripts can pipe it.
A bad spec prints one line naming the field and exits with status 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Parallel ML experiments on Apache Airflow.")


@app.callback()
def _command() -> None:
    from mlfleet.shutdown import skip_final_collections

    skip_final_collections()  # a sweep's command exits 1-3 s sooner


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _exit_on_bad_setting(err: ValueError) -> None:
    """A bad MLFLEET_* value (e.g. MLFLEET_MAX_TIMEOUT_MINUTES=inf) is one line naming the variable, exit 2."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError) and err.title in ("Settings", "Limits"):
        first = err.errors(include_url=False)[0]
        variable = f"MLFLEET_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        _err(f"error: {variable}: {str(first['msg']).removeprefix('Value error, ')}")
        raise typer.Exit(2) from None


@app.command()
def up() -> None:
    """Start local Airflow (api-server, scheduler, dag-processor, triggerer, log server; all on 127.0.0.1)
    under MLFLEET_HOME."""
    from mlfleet.devstack import stack
    from mlfleet.config import get_settings

    info = stack.up(get_settings())
    print(f"Airflow is up: {info['url']}  (login: {info['username']} / {info['password']})")
    print(f"logs: {info['logs']}")
    print(f"started: {', '.join(info['started'])}" if info["started"] else "every component was already running")


@app.command()
def down() -> None:
    """Stop the local Airflow started by `mlfleet up`."""
    from mlfleet.devstack import stack
    from mlfleet.config import get_settings

    stopped = stack.down(get_settings())
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def sweep(
    spec: Path = typer.Argument(..., help="experiment spec YAML"),
    as_json: bool = typer.Option(False, "--json", help="print the leaderboard JSON on stdout"),
) -> None:
    """Run one experiment to completion on this machine."""
    from mlfleet.sweep.runner import run_sweep
    from mlfleet.config import get_settings
    from mlfleet.spec import SpecError

    try:
        # Libraries print to stdout (Feast, MLflow): keep stdout for the JSON alone.
        with contextlib.redirect_stdout(sys.stderr):
            board = run_sweep(str(spec), settings=get_settings(), progress=_err)
    except SpecError as err:
        _err(f"error: {err}")
        raise typer.Exit(2) from None
    except ValueError as err:
        _exit_on_bad_setting(err)
        raise
    if as_json:
        print(json.dumps(board, indent=2, default=str))
    else:
        _print_leaderboard(board)


@app.command()
def plan(
    spec: Path = typer.Argument(..., help="experiment spec YAML"),
    backend: Optional[str] = typer.Option(None, help="local | sagemaker | kubernetes (default: the spec's, else configuration)"),
    dag_run_id: Optional[str] = typer.Option(None, help="show the names this experiment_sweep run id would use"),
    as_json: bool = typer.Option(False, "--json", help="print the plan JSON on stdout"),
) -> None:
    """Print the batches and the exact request per batch (CreateTrainingJob, pod manifest), sending nothing."""
    from mlfleet.sweep.plan import plan as plan_sweep
    from mlfleet.config import get_settings
    from mlfleet.spec import SpecError

    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = plan_sweep(str(spec), settings=get_settings(), backend=backend, dag_run_id=dag_run_id)
    except SpecError as err:
        _err(f"error: {err}")
        raise typer.Exit(2) from None
    except ValueError as err:
        _exit_on_bad_setting(err)
        raise
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(f"{result['experiment']} on {result['backend']}: {result['n_trials']} trials, {result['rounds']} round(s); "
          f"round 0 in {len(result['batches'])} batch(es)  (run id {result['run_id']})")
    if result.get("notice"):
        print(f"note: {result['notice']}")
    for batch in result["batches"]:
        res = batch["resources"]
        print(f"\n# {batch['batch_id']}: {len(batch['trials'])} trials, ~{batch['predicted_seconds']:.0f} core-s, "
              f"cpu={res['cpu']:g} memory_gb={res['memory_gb']:g} gpu={res['gpu']}")
        print(json.dumps(batch["request"], indent=2, default=str))


def _print_leaderboard(board: dict, limit: int = 10) -> None:
    print(f"{board['experiment']} {board['run_id']}  ({board['metric']}, higher is better)")
    print(f"{'rank':>4}  {'trial':<26} {'mean':>9} {'std':>8}  params")
    for rank, row in enumerate(board["trials"][:limit], 1):
        mean = "failed" if row["mean_score"] is None else f"{row['mean_score']:.5f}"
        std = "" if row["std_score"] is None else f"{row['std_score']:.4f}"
        print(f"{rank:>4}  {row['trial_id']:<26} {mean:>9} {std:>8}  {json.dumps(row['params'])}")
    if len(board["trials"]) > limit:
        print(f"      ... {len(board['trials']) - limit} more in leaderboard.json")
    print(f"results: {board['results_uri']}")


@app.command()
def demo(
    serve: bool = typer.Option(True, help="leave local Airflow running afterwards to browse the runs"),
) -> None:
    """Run the whole loop on generated data: events, features, sweep, drift, retrain, promotion."""
    from mlfleet.devstack import stack
    from mlfleet.config import get_settings
    from mlfleet.demo.loop import run_demo

    settings = get_settings()
    try:
        outcome = run_demo(settings, say=_err)
    except Exception:
        if not serve:
            stack.down(settings)
        raise
    print()
    _print_leaderboard(outcome["leaderboard"])
    drift = outcome["drift"]
    if drift:
        print(f"drift: {'yes' if drift['drift'] else 'no'} {drift['drifted_features']}  report: {drift.get('report_path', settings.drift_dir)}")
    decision = outcome["decision"]
    if decision:
        from mlfleet.retraining.verdict import verdict

        print(f"retrain: challenger v{decision['challenger_version']} {decision['challenger_score']:.4f} vs "
              f"champion v{decision['champion_version']} {decision['champion_score']:.4f} on the newest holdout -> {verdict(decision)}")
    print(f"MLflow: {settings.tracking_uri}  (browse: mlflow ui --backend-store-uri {settings.tracking_uri})")
    print(f"DAG run logs: {outcome['logs']}")
    if serve:
        info = stack.up(settings)
        print(f"Airflow UI: {info['url']}  login: {info['username']} / {info['password']}  (stop with: mlfleet down)")
    else:
        stack.down(settings)


if __name__ == "__main__":
    app()
