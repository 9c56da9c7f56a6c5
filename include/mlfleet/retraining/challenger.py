"""Drift-triggered retraining: an Optuna sweep warm-started from the champion's study, then a
challenger-vs-champion decision on the same newest holdout window.

The challenger is promoted (the MLflow `champion` alias moves) only when it scores strictly
higher on the holdout; both scores and the decision are recorded either way.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from mlfleet.backends.object_store import state_root
from mlfleet.config import Settings
from mlfleet.retraining.search_space import bayes_spec
from mlfleet.spec import SpecError
from mlfleet.storage import read_parquet, write_json_atomic
from mlfleet.sweep import SweepContext, finalize, fit_best, prepare as prepare_sweep, register_fitted
from mlfleet.sweep.context import Champion, Retraining


def prepare(conf: dict[str, Any], *, settings: Settings, run_id: str) -> SweepContext:
    """The champion's spec as a warm-started bayes sweep, with the newest window held out."""
    from mlfleet import results, tuning

    name = conf.get("model")
    if not name:
        raise SpecError("conf.model", "name the registered model to retrain, e.g. {\"model\": \"churn-baseline\"}")
    champion = results.champion(settings, name)
    if champion is None:
        raise SpecError("conf.model", f"registered model {name!r} has no champion version to retrain from")
    champion_spec = json.loads(champion["tags"]["mlfleet.spec"])
    spec = bayes_spec(champion_spec, n_trials=settings.retrain_trials, batch_size=settings.retrain_batch_size)
    context = prepare_sweep(spec, settings=settings, run_id=run_id, holdout_days=settings.holdout_days)
    if not context.holdout_path:
        raise SpecError("dataset", "retraining needs a timestamped dataset (a Feast feature service) for its holdout window")
    study = tuning.open_study(storage=settings.optuna_storage, name=context.study, seed=spec["cv"]["seed"])
    warm = 0
    source_name = champion["tags"].get("mlfleet.study")
    if source_name:
        source = tuning.open_study(storage=settings.optuna_storage, name=source_name, seed=0)
        warm = tuning.warm_start(study, source=source, spec=context.experiment_spec)
    retraining = Retraining(
        champion=Champion(version=str(champion["version"]), features=json.loads(champion["tags"]["mlfleet.features"])),
        drifted_features=list(conf.get("drifted_features") or []), drift_report=conf.get("drift_report"),
        warm_started_trials=warm,
    )
    return context.model_copy(update={"retraining": retraining}).save()


def decide(context: SweepContext, *, settings: Settings) -> dict[str, Any]:
    """Finish the sweep, fit the challenger, score both on the holdout, and move the alias if it wins."""
    from sklearn.metrics import get_scorer

    from mlfleet import results

    if context.retraining is None or context.holdout_path is None:
        raise ValueError(f"sweep {context.experiment}/{context.run_id} is not a retrain (no champion, no holdout)")
    retraining = context.retraining
    spec = context.experiment_spec
    name = context.experiment
    board = finalize(context, settings=settings, register=False)
    if not board["best"]:
        raise RuntimeError(f"every retraining trial failed; see {board['results_uri']}/leaderboard.json")
    holdout = read_parquet(context.stored(context.holdout_path))
    if spec.task == "classification" and holdout[spec.target].nunique() < 2:
        raise RuntimeError(f"the {settings.holdout_days}-day holdout has a single class; widen MLFLEET_HOLDOUT_DAYS")
    scorer = get_scorer(spec.metric)
    challenger, X_train = fit_best(context, board["best"])
    # The version this retrain was prepared against, not whatever holds the alias now: another
    # retrain finishing meanwhile may have moved it, and the decision names the version it beat.
    champion = results.load_model(settings, f"models:/{name}/{retraining.champion.version}")
    champion_score = float(scorer(champion, holdout[retraining.champion.features], holdout[spec.target]))
    challenger_score = float(scorer(challenger, holdout[context.features], holdout[spec.target]))
    promoted = challenger_score > champion_score
    holdout_window = [str(holdout["event_timestamp"].min()), str(holdout["event_timestamp"].max())]
    decision_tags = {"mlfleet.holdout_score": f"{challenger_score:.6f}",
                     "mlfleet.champion_holdout_score": f"{champion_score:.6f}",
                     "mlfleet.decision": "promoted" if promoted else "kept_champion"}
    info = register_fitted(context, board["best"], model=challenger, X=X_train, settings=settings,
                           extra_tags=decision_tags)
    if promoted:
        results.set_alias(settings, name, "champion", info["version"])
    decision = {
        "model": name, "run_id": context.run_id, "metric": spec.metric,
        "champion_version": retraining.champion.version, "challenger_version": str(info["version"]),
        "champion_score": champion_score, "challenger_score": challenger_score, "promoted": promoted,
        "holdout_rows": int(len(holdout)), "holdout_window": holdout_window,
        "drifted_features": retraining.drifted_features, "drift_report": retraining.drift_report,
        "warm_started_trials": retraining.warm_started_trials,
        "best_trial": board["best"], "decided_at": datetime.now(timezone.utc).isoformat(),
    }
    write_json_atomic(state_root(settings, "decisions") / name / f"{context.run_id}.json", decision)
    write_json_atomic(context.results_path / "decision.json", decision)
    return decision
