"""The last step of a sweep: leaderboard, plot, MLflow runs, and the best model registered."""

from __future__ import annotations

import functools
import importlib
import json
import logging
from typing import Any

from mlfleet.config import Settings
from mlfleet.storage import read_parquet, uri_of, write_json_atomic
from mlfleet.sweep.batches import collect_rows
from mlfleet.sweep.context import SweepContext
from mlfleet.sweep.propose import open_study, proposed_trials, record, record_history
from mlfleet.training.zoo import THREADED_MODELS

log = logging.getLogger(__name__)
# What finalize imports that the steps before it do not: MLflow and its database stores, Optuna,
# plotly; seconds of CPU, which `mlfleet sweep` spends while its first batch trains.
LIBRARIES = (
    "optuna", "mlflow", "mlflow.sklearn", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store", "plotly.graph_objects", "mlfleet.results", "mlfleet.tuning",
)


@functools.cache
def import_libraries() -> None:
    """Import `LIBRARIES` (once), so finalize does not wait for them; one that fails is logged, and
    finalize raises its error where it needs it."""
    for name in LIBRARIES:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - finalize imports it again and fails there, with context
            log.warning("could not import %s ahead of finalize (%s)", name, err)


def finalize(context: SweepContext, *, settings: Settings, register: bool = True) -> dict[str, Any]:
    """Write the leaderboard (JSON, CSV), the plot, the MLflow runs (every trial up to MLFLEET_MLFLOW_TRIAL_RUNS), and register the best model."""
    from mlfleet import results

    spec = context.experiment_spec
    rows = collect_rows(context)
    trials = proposed_trials(context)
    record_history(context, settings=settings, rows=rows, trials=trials)  # every sweep's fold times
    missing = {t.trial_id for t in trials} - {r["trial_id"] for r in rows}
    if missing:
        raise RuntimeError(f"{len(missing)} proposed trials have no result (e.g. {sorted(missing)[:3]}); re-run their batches")
    results_dir = context.results_path
    board = results.build_leaderboard(
        experiment=context.experiment, run_id=context.run_id, metric=spec.metric,
        results_uri=uri_of(results_dir), rows=rows,
    )
    results.write_leaderboard(results_dir, board)
    results.parallel_coordinates_html(board, results_dir / "parallel_coordinates.html")
    results.log_trials(settings=settings, experiment=context.experiment, run_id=context.run_id, rows=rows,
                       metric=spec.metric)
    if spec.search.strategy == "bayes":
        record(context, settings=settings)  # the last round's trials: no later round tells them
    else:
        from mlfleet.tuning import record_trials

        record_trials(open_study(context, settings), spec, rows, trials)
    if register and board["best"]:
        board["registered_model"] = register_best(context, board, settings=settings)
        results.write_leaderboard(results_dir, board)
    return board


def summary(board: dict[str, Any]) -> dict[str, Any]:
    """What the finalize task returns to XCom: where the results are and who won, not the rows."""
    return {"results_uri": board["results_uri"], "best": board["best"], "n_trials": len(board["trials"]),
            "registered_model": board.get("registered_model")}


def fit_best(context: SweepContext, best: dict[str, Any], *, data_path: str | None = None) -> tuple[Any, Any]:
    """Refit the best trial's estimator on the whole staged training set."""
    from mlfleet.training.zoo import build_estimator

    spec = context.experiment_spec
    frame = read_parquet(context.stored(data_path or context.data_path))
    X, y = frame[context.features], frame[spec.target]
    n_classes = int(y.nunique()) if spec.task == "classification" else 0
    model = build_estimator(best["model"], best["params"], task=spec.task, seed=spec.cv.seed, n_classes=n_classes)
    return _fit_on_every_core(model, X, y, spread=refit_spreads(best["model"], best["params"])), X


def refit_spreads(model_type: str, params: dict[str, Any]) -> bool:
    """Whether the best trial's refit gets every core: a model whose `n_jobs` counts threads, and
    not set by the user.

    The forests, XGBoost and LightGBM run `n_jobs` threads. The other `n_jobs` in the zoo count
    processes (one-vs-rest logistic regression: a loky pool, whose start costs far more than the
    small refit it would spread; docs/design-figures.md, "Why the settings") or nothing (binary
    LogisticRegression ignores it since scikit-learn 1.8, with a FutureWarning).
    """
    return model_type in THREADED_MODELS and "n_jobs" not in params


def _fit_on_every_core(model: Any, X: Any, y: Any, *, spread: bool) -> Any:
    """Fit with `n_jobs` = every core where `spread`, then give the model back its own `n_jobs`.

    Trials fit on one core each (the batch runs one per core), but this refit runs alone: its
    cores would idle. The forests, XGBoost and LightGBM give the same model for any `n_jobs` (a
    test holds it to that), so only the wall time changes.
    """
    import os

    params = model.get_params(deep=False)
    if not spread or "n_jobs" not in params:
        return model.fit(X, y)
    own = params["n_jobs"]
    model.set_params(n_jobs=os.cpu_count() or 1)
    try:
        return model.fit(X, y)
    finally:
        model.set_params(n_jobs=own)


def register_best(context: SweepContext, board: dict[str, Any], *, settings: Settings) -> dict[str, Any]:
    model, X = fit_best(context, board["best"])
    return register_fitted(context, board["best"], model=model, X=X, settings=settings)


def register_fitted(context: SweepContext, best: dict[str, Any], *, model: Any, X: Any, settings: Settings,
                    extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Register a fitted model as a version of the experiment's model, with what produced it as tags."""
    from mlfleet import results
    from mlfleet.drift import sketch

    spec = context.experiment_spec
    tags = {
        "mlfleet.trial_id": best["trial_id"],
        "mlfleet.metric": spec.metric,
        "mlfleet.task": spec.task,
        "mlfleet.target": spec.target,
        "mlfleet.features": json.dumps(context.features),
        "mlfleet.data_fingerprint": context.data_fingerprint,
        "mlfleet.study": context.study,
        "mlfleet.spec": json.dumps(context.spec, sort_keys=True),
    }
    if spec.dataset.feature_service:
        tags["mlfleet.feature_service"] = spec.dataset.feature_service
    tags.update(extra_tags or {})
    info = results.register_model(
        settings=settings, experiment=context.experiment, run_id=context.run_id, model=model,
        X_sample=X.head(5).astype("float64"), reference_statistics=sketch.of_frame(X), tags=tags,
        score=best["mean_score"],
    )
    write_json_atomic(context.results_path / "model" / "registered.json", {**info, "tags": tags})
    return info
