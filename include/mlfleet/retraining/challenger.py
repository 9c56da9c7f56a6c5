"""Drift-triggered retraining: an Optuna sweep warm-started from the champion's study, then a
challenger-vs-champion decision on the same newest holdout window.

The challenger is promoted (the MLflow `champion` alias moves) only when it scores strictly
higher on the holdout than the champion the retrain was prepared against, and that champion still
holds the alias (`decide`); both scores and the decision are recorded either way, once.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from mlfleet.backends.object_store import state_root
from mlfleet.config import Settings
from mlfleet.retraining.search_space import bayes_spec
from mlfleet.spec import SpecError
from mlfleet.storage import read_parquet, write_json_atomic
from mlfleet.sweep import SweepContext, finalize, fit_best, prepare as prepare_sweep, register_fitted
from mlfleet.sweep.context import Champion, Retraining

log = logging.getLogger(__name__)


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
    """Finish the sweep, fit the challenger, score both on the holdout, and promote it if it wins: once per retrain.

    A decision already recorded for this retrain (`decisions/<model>/<run id>.json`) is returned
    as it is: replaying the task, or clearing an old retrain's `end_round`, moves nothing.

    The challenger is compared with the champion this retrain was prepared against, and promoted
    only if that version still holds `champion` right before the move (`promote_champion`, a
    compare-and-set). If another retrain promoted meanwhile, or someone moved the alias, the
    decision is "stale: champion moved from vX to vY since this retrain was prepared" and nothing
    moves. Why not re-compare with the new champion instead: its features may not be in this
    holdout, a re-score is a window in which the alias can move again, and a drift check of the new
    champion triggers a retrain against it anyway. MLflow's registry has no atomic compare-and-set:
    on the local SQLite store a lock closes the race; against a tracking server a promotion that
    reads the old champion at the same moment as another can still win over it (see
    `mlfleet.results.registry.promote_champion`).

    A retry after the task died between registering the challenger and moving the alias finds the
    version this retrain registered (by its sweep tag) instead of registering a second, and moves
    the alias if the champion is still the one it beat.
    """
    from sklearn.metrics import get_scorer

    from mlfleet import results
    from mlfleet.results import registry

    if context.retraining is None or context.holdout_path is None:
        raise ValueError(f"sweep {context.experiment}/{context.run_id} is not a retrain (no champion, no holdout)")
    retraining = context.retraining
    spec = context.experiment_spec
    name = context.experiment
    record = state_root(settings, "decisions") / name / f"{context.run_id}.json"
    if record.is_file():
        decision = json.loads(record.read_text())
        log.info("retrain %s/%s was decided already (%s): returned as recorded, nothing moved",
                 name, context.run_id, decision.get("outcome", "promoted" if decision.get("promoted") else "kept_champion"))
        return decision
    board = finalize(context, settings=settings, register=False)
    if not board["best"]:
        raise RuntimeError(f"every retraining trial failed; see {board['results_uri']}/leaderboard.json")
    holdout = read_parquet(context.stored(context.holdout_path))
    if spec.task == "classification" and holdout[spec.target].nunique() < 2:
        raise RuntimeError(f"the {settings.holdout_days}-day holdout has a single class; widen MLFLEET_HOLDOUT_DAYS")
    scorer = get_scorer(spec.metric)
    challenger, X_train = fit_best(context, board["best"])
    # The version this retrain was prepared against, not whatever holds the alias now: the
    # promotion below moves the alias only if that version still holds it.
    compared_with = retraining.champion.version
    champion = results.load_model(settings, f"models:/{name}/{compared_with}")
    champion_score = float(scorer(champion, holdout[retraining.champion.features], holdout[spec.target]))
    challenger_score = float(scorer(challenger, holdout[context.features], holdout[spec.target]))
    holdout_window = [str(holdout["event_timestamp"].min()), str(holdout["event_timestamp"].max())]
    score_tags = {"mlfleet.holdout_score": f"{challenger_score:.6f}",
                  "mlfleet.champion_holdout_score": f"{champion_score:.6f}",
                  "mlfleet.compared_with": compared_with}
    # Registered once per retrain (a retry finds this run's version by its tag).
    info = register_fitted(context, board["best"], model=challenger, X=X_train, settings=settings,
                           extra_tags=score_tags)
    version = str(info["version"])
    if challenger_score > champion_score:
        moved = registry.promote_champion(settings, name, version=version, compared_with=compared_with)
        outcome = moved["outcome"]
        holder = moved["champion"]
    else:
        outcome, holder = "kept_champion", registry.alias_holder(settings, name, registry.CHAMPION)
    reason = {
        "promoted": f"v{version} beat v{compared_with} on the holdout and is the champion",
        "kept_champion": f"v{version} did not beat v{compared_with} on the holdout",
        "stale": f"stale: champion moved from v{compared_with} to {_named(holder)} since this retrain was prepared",
        "superseded": f"superseded: champion moved from v{version} to {_named(holder)} right after this retrain "
                      f"promoted it",
    }[outcome]
    if outcome in ("stale", "superseded"):
        log.warning("retrain %s/%s: %s; the alias is left where it is", name, context.run_id, reason)
    results.record_version_tags(settings, name, version, {"mlfleet.decision": outcome})
    decision = {
        "model": name, "run_id": context.run_id, "metric": spec.metric,
        "champion_version": compared_with, "challenger_version": version,
        "champion_score": champion_score, "challenger_score": challenger_score,
        "promoted": outcome == "promoted", "outcome": outcome, "reason": reason, "champion_after": holder,
        "holdout_rows": int(len(holdout)), "holdout_window": holdout_window,
        "drifted_features": retraining.drifted_features, "drift_report": retraining.drift_report,
        "warm_started_trials": retraining.warm_started_trials,
        "best_trial": board["best"], "decided_at": datetime.now(timezone.utc).isoformat(),
    }
    write_json_atomic(context.results_path / "decision.json", decision)
    write_json_atomic(record, decision)  # last: from here on, this retrain is decided
    return decision


def _named(version: str | None) -> str:
    return f"v{version}" if version is not None else "no version (the alias was removed)"
