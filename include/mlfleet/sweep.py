"""A sweep's steps as plain functions: the DAG tasks wrap them and `mlfleet sweep` chains them.

prepare (validate everything, stage the training set) -> propose (a round's batches) ->
run_batch (one mapped task each) -> record (tell Optuna) -> ... -> finalize (leaderboard, plot,
MLflow runs, registered model). Each step is idempotent: a retried task reuses what its first
attempt wrote, and nothing is written for a spec that fails validation.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from mlfleet.backends.object_store import file_sha256
from mlfleet.config import Settings
from mlfleet.spec import ExperimentSpec, SpecError, load_spec, parse_spec
from mlfleet.training.entrypoint import write_json_atomic
from mlfleet.trials import Trial, expand, plan_batches

DATA_FILE = "train.parquet"


def new_run_id(now: datetime | None = None, salt: str = "") -> str:
    """`20261122T101500-3f2a`: sortable by time, unique with the salt."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha256(f"{now.isoformat()}{salt}".encode()).hexdigest()[:4]
    return f"{now:%Y%m%dT%H%M%S}-{digest}"


def run_id_from_airflow(dag_run_id: str) -> str:
    """A filesystem- and job-name-safe, deterministic id for an Airflow run id."""
    stamp = re.sub(r"[^0-9T]", "", dag_run_id.split("__")[-1])[:15] or "run"
    return f"{stamp}-{hashlib.sha256(dag_run_id.encode()).hexdigest()[:4]}"


def max_rounds(spec: ExperimentSpec) -> int:
    if spec.search.strategy != "bayes":
        return 1
    batch = spec.search.batch_size or spec.budget.max_parallel
    return math.ceil((spec.search.n_trials or 1) / batch)


def validate(spec_source: Any, *, settings: Settings, round_limit: int | None = None,
             backend: str | None = None) -> ExperimentSpec:
    """Every check that needs no data: structure, scorer, params, backend and its settings, GPU, rounds."""
    from mlfleet.backends import check_backend
    from mlfleet.spec.validate import check_static

    spec = parse_spec(spec_source) if isinstance(spec_source, ExperimentSpec) else load_spec(spec_source)
    check_static(spec)
    check_backend(spec, backend or spec.backend or settings.backend, settings=settings, cuda_available=_cuda_available)
    if round_limit is not None and max_rounds(spec) > round_limit:
        raise SpecError(
            "search.batch_size",
            f"n_trials={spec.search.n_trials} in batches of {spec.search.batch_size} needs {max_rounds(spec)} rounds; "
            f"the DAG runs at most {round_limit}: raise batch_size to at least {math.ceil((spec.search.n_trials or 1) / round_limit)}",
        )
    return spec


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def prepare(spec_source: Any, *, settings: Settings, run_id: str | None = None, round_limit: int | None = None,
            holdout_days: int = 0, backend: str | None = None, results_root: Path | None = None,
            send: bool = True) -> dict[str, Any]:
    """Validate the spec against its data, then stage the training set; returns the sweep context.

    Remote backends also get the training set in the object store, content-addressed (uploaded
    once, whichever sweep needs it). `send=False` (plan) computes every name but uploads nothing.
    """
    from mlfleet.datasets import feature_columns, load_frame
    from mlfleet.spec.validate import check_target

    spec = validate(spec_source, settings=settings, round_limit=round_limit, backend=backend)
    backend = backend or spec.backend or settings.backend
    frame = load_frame(spec, settings)
    features = feature_columns(spec, frame)
    check_target(spec, frame)
    run_id = run_id or new_run_id(salt=spec.name)
    results_dir = (results_root or settings.experiments_dir) / spec.name / run_id
    keep = [c for c in ("customer_id", "event_timestamp") if c in frame.columns]
    frame = frame[[*keep, *features, spec.target]]
    holdout = None
    if holdout_days and "event_timestamp" in frame.columns:
        import pandas as pd

        cutoff = frame["event_timestamp"].max() - pd.Timedelta(days=holdout_days)
        holdout, frame = frame[frame["event_timestamp"] > cutoff], frame[frame["event_timestamp"] <= cutoff]
        check_target(spec, frame)
    data_dir = results_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_parquet(frame, data_dir / DATA_FILE)
    if holdout is not None:
        _write_parquet(holdout, data_dir / "holdout.parquet")
    fingerprint = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()[:16]
    context = {
        "experiment": spec.name,
        "run_id": run_id,
        "results_dir": str(results_dir),
        "data_path": str(data_dir / DATA_FILE),
        "holdout_path": str(data_dir / "holdout.parquet") if holdout is not None else None,
        "features": features,
        "n_rows": int(len(frame)),
        "data_fingerprint": fingerprint,
        "spec": spec.model_dump(mode="json", exclude_none=True),
        "backend": backend,
        "data_sha256": file_sha256(data_dir / DATA_FILE),
        "study": f"{spec.name}.{run_id}",
        "rounds": max_rounds(spec),
        "n_trials": spec.search.n_trials if spec.search.strategy == "bayes" else len(expand(spec)),
    }
    if backend != "local":
        from mlfleet.backends import naming

        root = str(settings.object_store_uri)
        context["data_uri"] = naming.dataset_uri(root, context["data_sha256"], DATA_FILE)
        context["results_store_uri"] = naming.run_uri(root, spec.name, run_id)
        if send:
            from mlfleet.backends import object_store

            object_store.upload_once(settings, data_dir / DATA_FILE, context["data_uri"])
    write_json_atomic(results_dir / "spec.json", context["spec"])
    write_json_atomic(results_dir / "context.json", context)
    return context


def _write_parquet(frame: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def spec_metric(context: dict[str, Any]) -> str:
    return str(context["spec"]["metric"])


def spec_of(context: dict[str, Any]) -> ExperimentSpec:
    return parse_spec(context["spec"])


def _study(context: dict[str, Any], settings: Settings) -> Any:
    from mlfleet.tuning import open_study

    return open_study(storage=settings.optuna_storage, name=context["study"], seed=spec_of(context).cv.seed)


def _round_file(context: dict[str, Any], round_index: int) -> Path:
    return Path(context["results_dir"]) / "rounds" / f"{round_index:03d}.json"


def propose(context: dict[str, Any], *, round_index: int, settings: Settings) -> list[dict[str, Any]]:
    """A round's batches; a retried proposal returns the same batches (they are written down)."""
    path = _round_file(context, round_index)
    if path.is_file():
        return json.loads(path.read_text())
    spec = spec_of(context)
    if round_index >= context["rounds"]:
        trials: list[Trial] = []
    elif spec.search.strategy == "bayes":
        from mlfleet.tuning import ask

        batch = spec.search.batch_size or spec.budget.max_parallel
        remaining = (spec.search.n_trials or 0) - round_index * batch
        trials = ask(_study(context, settings), spec, min(batch, remaining)) if remaining > 0 else []
    else:
        trials = expand(spec)
    payload = plan_round(spec, trials, round_index=round_index, settings=settings, backend=context["backend"])
    write_json_atomic(path, payload)
    return payload


def plan_round(spec: ExperimentSpec, trials: list[Trial], *, round_index: int, settings: Settings,
               backend: str) -> list[dict[str, Any]]:
    """Batches of a round: trials grouped by their `resources` (one machine shape per batch), then
    packed by predicted runtime onto as many cores as a batch's machine has."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(spec.resources_for(trial.model_index).model_dump_json(), []).append(trial)
    payload = []
    for key, members in sorted(groups.items()):
        resources = json.loads(key)
        cores = settings.workers if backend == "local" else max(1, int(resources["cpu"]))
        share = max(1, round(spec.budget.max_parallel * len(members) / len(trials)))
        for batch in plan_batches(members, folds=spec.cv.folds, cores_per_batch=cores, max_batches=share,
                                  target_seconds=settings.batch_target_seconds, prefix=f"r{round_index}"):
            payload.append({**batch.to_dict(), "round": round_index, "resources": resources})
    return sorted(payload, key=lambda b: b["batch_id"])


def batch_dir(context: dict[str, Any], batch: dict[str, Any]) -> Path:
    return Path(context["results_dir"]) / "batches" / batch["batch_id"]


def batch_job(context: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """What the training entrypoint needs for one batch, on any backend."""
    spec = spec_of(context)
    return {
        "task": spec.task,
        "target": spec.target,
        "features": context["features"],
        "metric": spec.metric,
        "cv": {"folds": spec.cv.folds, "seed": spec.cv.seed},
        "trials": batch["trials"],
    }


def run_batch(context: dict[str, Any], batch: dict[str, Any], *, settings: Settings) -> dict[str, Any]:
    """Run one batch on this machine (the local backend); returns a small summary for XCom."""
    from mlfleet.backends import batch_results, local

    spec = spec_of(context)
    directory = local.stage_batch(batch_dir(context, batch), job=batch_job(context, batch), data_path=Path(context["data_path"]))
    rows = local.run_batch(
        directory,
        trial_ids=[t["trial_id"] for t in batch["trials"]],
        workers=settings.workers,
        timeout_seconds=spec.budget.timeout_minutes * 60,
    )
    return batch_results.summary(batch["batch_id"], rows)


def collect_rows(context: dict[str, Any]) -> list[dict[str, Any]]:
    """Every finished trial row of the sweep, read from the batches' outputs (not from XCom)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(context["results_dir"]).glob("batches/*/model/results.json")):
        for row in json.loads(path.read_text()):
            rows[row["trial_id"]] = row
    return list(rows.values())


def proposed_trials(context: dict[str, Any]) -> list[Trial]:
    trials = []
    for path in sorted((Path(context["results_dir"]) / "rounds").glob("*.json")):
        for batch in json.loads(path.read_text()):
            trials += [Trial.from_dict(t) for t in batch["trials"]]
    return trials


def record(context: dict[str, Any], *, settings: Settings) -> int:
    """Tell Optuna the scores of every finished bayes trial (no-op for grid and random)."""
    if spec_of(context).search.strategy != "bayes":
        return 0
    from mlfleet.tuning import tell

    return tell(_study(context, settings), collect_rows(context), proposed_trials(context))


def finalize(context: dict[str, Any], *, settings: Settings, register: bool = True) -> dict[str, Any]:
    """Write the leaderboard (JSON, CSV), the plot, one MLflow run per trial, and register the best model."""
    from mlfleet import results

    spec = spec_of(context)
    rows = collect_rows(context)
    expected = {t.trial_id for t in proposed_trials(context)}
    missing = expected - {r["trial_id"] for r in rows}
    if missing:
        raise RuntimeError(f"{len(missing)} proposed trials have no result (e.g. {sorted(missing)[:3]}); re-run their batches")
    results_dir = Path(context["results_dir"])
    board = results.build_leaderboard(
        experiment=context["experiment"], run_id=context["run_id"], metric=spec.metric,
        results_uri=results_dir.as_uri(), rows=rows,
    )
    results.write_leaderboard(results_dir, board)
    results.parallel_coordinates_html(board, results_dir / "parallel_coordinates.html")
    results.log_trials(settings=settings, experiment=context["experiment"], run_id=context["run_id"], rows=rows, metric=spec.metric)
    if spec.search.strategy != "bayes":
        from mlfleet.tuning import record_trials

        record_trials(_study(context, settings), spec, rows, proposed_trials(context))
    if register and board["best"]:
        board["registered_model"] = register_best(context, board, settings=settings)
        results.write_leaderboard(results_dir, board)
    return board


def fit_best(context: dict[str, Any], best: dict[str, Any], *, data_path: str | None = None) -> tuple[Any, Any]:
    """Refit the best trial's estimator on the whole staged training set."""
    import pandas as pd

    from mlfleet.training.zoo import build_estimator

    spec = spec_of(context)
    frame = pd.read_parquet(data_path or context["data_path"])
    X, y = frame[context["features"]], frame[spec.target]
    n_classes = int(y.nunique()) if spec.task == "classification" else 0
    model = build_estimator(best["model"], best["params"], task=spec.task, seed=spec.cv.seed, n_classes=n_classes)
    return model.fit(X, y), X


def register_best(context: dict[str, Any], board: dict[str, Any], *, settings: Settings) -> dict[str, Any]:
    model, X = fit_best(context, board["best"])
    return register_fitted(context, board["best"], model=model, X=X, settings=settings)


def register_fitted(context: dict[str, Any], best: dict[str, Any], *, model: Any, X: Any, settings: Settings,
                    extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Register a fitted model as a version of the experiment's model, with what produced it as tags."""
    from mlfleet import results

    spec = spec_of(context)
    tags = {
        "mlfleet.trial_id": best["trial_id"],
        "mlfleet.metric": spec.metric,
        "mlfleet.task": spec.task,
        "mlfleet.target": spec.target,
        "mlfleet.features": json.dumps(context["features"]),
        "mlfleet.data_fingerprint": context["data_fingerprint"],
        "mlfleet.study": context["study"],
        "mlfleet.spec": json.dumps(context["spec"], sort_keys=True),
    }
    if spec.dataset.feature_service:
        tags["mlfleet.feature_service"] = spec.dataset.feature_service
    tags.update(extra_tags or {})
    info = results.register_model(
        settings=settings, experiment=context["experiment"], run_id=context["run_id"], model=model,
        X_sample=X.head(5).astype("float64"), reference=X, tags=tags, score=best["mean_score"],
    )
    write_json_atomic(Path(context["results_dir"]) / "model" / "registered.json", {**info, "tags": tags})
    return info


def run_sweep(spec_source: Any, *, settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a whole sweep in this process (the CLI's path, local backend), rounds one after another."""
    say = progress or (lambda _msg: None)
    spec = validate(spec_source, settings=settings)
    if (spec.backend or settings.backend) != "local":
        raise SpecError("backend", f"`mlfleet sweep` runs trials on this machine; a {spec.backend or settings.backend} sweep "
                        "runs through the experiment_sweep DAG (see its requests with `mlfleet plan`)")
    context = prepare(spec, settings=settings)
    say(f"{context['experiment']} {context['run_id']}: {context['n_rows']} rows, {len(context['features'])} features, "
        f"{context['rounds']} round(s)")
    done = 0
    best: float | None = None
    for round_index in range(context["rounds"]):
        batches = propose(context, round_index=round_index, settings=settings)
        for batch in batches:
            summary = run_batch(context, batch, settings=settings)
            done += summary["trials"]
            if summary["best"] and (best is None or summary["best"]["mean_score"] > best):
                best = summary["best"]["mean_score"]
            shown = "-" if best is None else f"{best:.5f}"
            say(f"{done}/{context['n_trials']} trials done, best {spec_metric(context)} {shown}")
        record(context, settings=settings)
    return finalize(context, settings=settings)
