"""What each results page shows, as plain dicts: the app renders them, the tests read them.

Reads through the same modules the CLI and the DAGs write with (`mlfleet.sweep.progress`, the
drift and decision files, `mlfleet.results`), from the deployment's MLFLEET_HOME, or its object store
with MLFLEET_SWEEP_STATE=object_store. MLflow, Optuna
and numpy are imported inside the functions that need them, never when the app is built.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlfleet.config import Settings
from mlfleet.results import figures
from mlfleet.backends.object_store import state_root
from mlfleet.storage import forget_listings
from mlfleet.sweep import progress
from mlfleet.sweep.context import experiments_root
from mlfleet.sweep.progress import NotFound, safe_name

FAILED, SUCCESS, PENDING = "failed", "success", "pending"
RETRAIN_DAG = "retrain"  # its runs make the promotion decisions: only its readers see them
# A version `retraining.decide` registered carries its decision in this tag (used when the retrain's
# results directory is gone and cannot say which DAG made the version).
DECISION_TAG = "mlfleet.decision"


def experiments(settings: Settings, readable: set[str]) -> list[dict[str, Any]]:
    """Every sweep and retrain the user may read (by its DAG), newest first, with its champion."""
    sweeps = [s for s in progress.list_sweeps(experiments_root(settings)) if s.dag_id in readable]
    champions = _champions(settings, {s.experiment for s in sweeps}, readable)
    return [{**asdict(s), "champion_version": champions.get(s.experiment)} for s in sweeps]


def _champions(settings: Settings, names: set[str], readable: set[str]) -> dict[str, str]:
    """name -> champion version, for the names whose champion the user may see (two MLflow queries for all)."""
    if not names or not _has_registry(settings):
        return {}
    from mlfleet.results.registry import registered_models

    visible = _readable_versions(settings, readable)
    return {m["name"]: m["aliases"]["champion"] for m in registered_models(settings)
            if m["name"] in names and str(m["aliases"].get("champion")) in visible.get(m["name"], set())}


def _version_dag(settings: Settings, version: dict[str, Any]) -> str:
    """The DAG whose sweep registered a model version: what decides who may see it."""
    try:
        path = progress.run_path(experiments_root(settings), version["name"], version["sweep_run_id"])
    except NotFound:  # results removed (or kept elsewhere): the version's own tags say if a retrain made it
        return RETRAIN_DAG if DECISION_TAG in version["tags"] else "experiment_sweep"
    return progress.dag_of(path)


def _readable_versions(settings: Settings, readable: set[str], name: str | None = None) -> dict[str, set[str]]:
    """Model name -> the versions mlfleet registered from sweeps of DAGs the user may read.

    Models mlfleet did not register (no sweep tag) are never among them, whoever asks.
    """
    if not readable or not _has_registry(settings):
        return {}
    from mlfleet.results.registry import registered_versions

    visible: dict[str, set[str]] = {}
    for version in registered_versions(settings, name):
        if _version_dag(settings, version) in readable:
            visible.setdefault(version["name"], set()).add(version["version"])
    return visible


def _has_registry(settings: Settings) -> bool:
    """A local MLflow store that was never written has nothing to show (and must not be created)."""
    uri = settings.tracking_uri
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def sweep_path(settings: Settings, experiment: str, run_id: str, readable: set[str]) -> Path:
    """The sweep's directory, if the user may read its DAG (NotFound otherwise: no existence leak)."""
    path = progress.run_path(experiments_root(settings), experiment, run_id)
    if progress.dag_of(path) not in readable:
        raise NotFound(f"no sweep {experiment}/{run_id}")
    return path


def _param_columns(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({name for r in rows for name in (r.get("params") or {})})


def _display(value: Any) -> str:
    if value is None:
        return "null"  # an explicit null (e.g. max_depth: null), not a param this model lacks
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def run(settings: Settings, path: Path) -> dict[str, Any]:
    """A run's head, its leaderboard rows (best first, failed then pending last) and its columns."""
    rows, board = progress.trial_rows(path)
    head = progress.summary(path, rows, board)
    rank = {SUCCESS: 0, FAILED: 1, PENDING: 2}
    ordered = sorted(rows, key=lambda r: (rank.get(r.get("status"), 3),
                                          -(r["mean_score"] if _finite(r.get("mean_score")) else -math.inf),
                                          str(r.get("trial_id"))))
    best_id = (head.best or {}).get("trial_id")
    params = _param_columns(rows)
    table = [{
        "trial_id": r.get("trial_id"), "model": r.get("model"), "status": r.get("status"),
        "mean_score": r.get("mean_score"), "std_score": r.get("std_score"), "fit_seconds": r.get("fit_seconds"),
        "error": r.get("error"), "best": r.get("trial_id") == best_id and r.get("status") == SUCCESS,
        # "" for a param this trial's model does not have; an explicit None shows as "null"
        "params": {name: _display(r["params"][name]) if name in (r.get("params") or {}) else "" for name in params},
    } for r in ordered]
    return {"head": asdict(head), "params": params, "rows": table, "final": board is not None,
            "airflow_runs": progress.airflow_runs(path)}


def leaderboard(settings: Settings, path: Path) -> dict[str, Any]:
    """The leaderboard JSON of experiment-spec.md: the final one, or one of the trials done so far."""
    from mlfleet.results.leaderboard import build_leaderboard

    rows, board = progress.trial_rows(path)
    if board is not None:
        return board
    head = progress.summary(path, rows, board)
    done = [r for r in rows if r.get("status") in (SUCCESS, FAILED)]
    return build_leaderboard(experiment=head.experiment, run_id=head.run_id, metric=head.metric,
                             results_uri=path.as_uri(), rows=done)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plots(settings: Settings, path: Path) -> dict[str, Any]:
    """The run's figures: parallel coordinates, optimization history, score by parameter, importance."""
    rows, board = progress.trial_rows(path)
    head = progress.summary(path, rows, board)
    board = {"trials": figures.succeeded(rows), "metric": head.metric}
    return {
        "parallel": figures.parallel_coordinates(board),
        "history": figures.optimization_history(rows, head.metric),
        "by_param": figures.score_by_param(rows, head.metric),
        "importance": figures.importance_bars(importances(settings, path)) if head.strategy in ("random", "bayes")
        else None,
    }


def importances(settings: Settings, path: Path) -> dict[str, dict[str, float]]:
    """fANOVA importances from the sweep's own Optuna study (empty until it holds finished trials)."""
    from mlfleet.sweep.context import SweepContext
    from mlfleet.tuning import load_study, param_importances

    context = SweepContext.load(path)
    try:
        study = load_study(storage=settings.optuna_storage, name=context.study)
    except KeyError:  # no such study yet: the sweep's first round is still running
        return {}
    return param_importances(study, context.experiment_spec)


def trial(settings: Settings, path: Path, trial_id: str) -> dict[str, Any]:
    """One trial: params, per-fold scores and seconds, predicted against actual, error, log, links."""
    head = progress.summary(path)
    row = progress.trial(path, safe_name(trial_id, "trial"))
    folds = [{"fold": k + 1, "score": score, "seconds": seconds} for k, (score, seconds) in enumerate(
        _pad(row.get("fold_scores"), row.get("fold_seconds")))]
    runs = progress.airflow_runs(path)
    round_index = int(row.get("round") or 0)
    mlflow_run = None
    if row.get("status") != PENDING and _has_registry(settings):
        from mlfleet.results.tracking import trial_run_id

        mlflow_run = trial_run_id(settings, head.experiment, head.run_id, row["trial_id"])
    return {"head": asdict(head), "row": row, "folds": folds,
            "airflow_run_id": runs[round_index] if round_index < len(runs) else None,
            "mlflow_run": mlflow_run, "mlflow_ui_url": settings.mlflow_ui_url}


def _pad(scores: list[Any] | None, seconds: list[Any] | None) -> list[tuple[Any, Any]]:
    scores, seconds = list(scores or []), list(seconds or [])
    size = max(len(scores), len(seconds))
    return list(zip(scores + [None] * (size - len(scores)), seconds + [None] * (size - len(seconds))))


def drift_reports(settings: Settings) -> list[dict[str, Any]]:
    """Every drift report, newest first: model, when, verdict, the features that drifted."""
    found = []
    root = state_root(settings, "drift")
    forget_listings(root)
    for path in root.glob("*/*.json"):
        report = _read(path)
        if report is None:
            continue
        found.append({"model": path.parent.name, "report": path.stem, "checked_at": report.get("checked_at"),
                      "drift": bool(report.get("drift")), "drifted_features": report.get("drifted_features", []),
                      "champion_version": report.get("champion_version")})
    return sorted(found, key=lambda r: (str(r["checked_at"]), r["report"]), reverse=True)


def drift_report(settings: Settings, model: str, report: str, readable: set[str]) -> dict[str, Any]:
    """One report with a histogram per feature, and (for readers of `retrain`) the retrain it
    triggered with its decision."""
    path = state_root(settings, "drift") / safe_name(model, "model") / f"{safe_name(report, 'report')}.json"
    data = _read(path)
    if data is None:
        raise NotFound(f"no drift report {model}/{report}")
    features = [{"name": name, **{k: v for k, v in values.items() if k != "histogram"},
                 "figure": figures.drift_histogram(name, values["histogram"]) if values.get("histogram") else None}
                for name, values in sorted(data.get("features", {}).items())]
    retrain = _triggered_retrain(settings, model, report, data) if RETRAIN_DAG in readable else None
    return {"model": model, "report": report, "data": data, "features": features, "retrain": retrain}


def _triggered_retrain(settings: Settings, model: str, report: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """drift_monitor names the retrain it triggers after the report (`retrain__<model>__v<n>__<key>`)."""
    if not data.get("drift") or "-" not in report:
        return None
    from mlfleet.sweep.ids import run_id_from_airflow

    key = report.split("-", 1)[1]
    airflow_run_id = f"retrain__{model}__v{data.get('champion_version')}__{key}"
    decision = _read(state_root(settings, "decisions") / model / f"{run_id_from_airflow(airflow_run_id)}.json")
    return {"dag_id": "retrain", "airflow_run_id": airflow_run_id, "decision": decision,
            "run_id": run_id_from_airflow(airflow_run_id)}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def models(settings: Settings, readable: set[str]) -> list[dict[str, Any]]:
    """The models mlfleet registered with a version the user may see, each with the aliases that
    point at such a version (a champion a retrain promoted shows only to readers of `retrain`)."""
    visible = _readable_versions(settings, readable)
    if not visible:
        return []
    from mlfleet.results.registry import registered_models

    return [{**m, "aliases": {alias: v for alias, v in m["aliases"].items() if str(v) in visible[m["name"]]}}
            for m in registered_models(settings) if m["name"] in visible]


def model_history(settings: Settings, name: str, readable: set[str]) -> dict[str, Any]:
    """A registered model's versions the user may see, newest first, each with the promotion
    decision that judged it (for readers of `retrain`). NotFound alike for a model that does not
    exist, that mlfleet did not register, and that the user may not see."""
    safe_name(name, "model")
    visible = _readable_versions(settings, readable, name).get(name, set())
    if not visible:
        raise NotFound(f"no registered model {name!r}")
    from mlfleet.results.registry import version_history

    versions = [v for v in version_history(settings, name) if v["version"] in visible]
    if not versions:
        raise NotFound(f"no registered model {name!r}")
    decisions = {}
    if RETRAIN_DAG in readable:
        root = state_root(settings, "decisions")
        forget_listings(root)
        for path in root.glob(f"{name}/*.json"):
            decision = _read(path)
            if decision and decision.get("challenger_version"):
                decisions[str(decision["challenger_version"])] = decision
    for version in versions:
        version["decision"] = decisions.get(version["version"])
        version["sweep_run_id"] = version["tags"].get("mlfleet.sweep_run_id")
        version["score"] = version["tags"].get("mlfleet.score")
    return {"name": name, "versions": versions, "mlflow_ui_url": settings.mlflow_ui_url}
