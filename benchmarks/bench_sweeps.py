"""Benchmark 5: whole sweeps, side by side with the machine's limit, on the path users take.

For one workload, in one run on one machine:

- limit: every (trial, fold) fit's CPU seconds, summed, divided by the cores (no tool can beat it);
- joblib: `Parallel(n_jobs=cores)` over the same fits (what a hand-written script would do);
- scikit-learn: `GridSearchCV(n_jobs=-1)` over the same trials and the same folds;
- `mlfleet sweep`: the CLI, no scheduler;
- the scheduler: `experiment_sweep` on `mlfleet up`'s Airflow, triggered over REST, timed from the
  POST to the end (`end_date`, as the API reports it) of the run that finalized the sweep.

The first four run with `mlfleet up` down, as a user runs a script or `mlfleet sweep` (they need
no Airflow, and an idle stack's own CPU is the scheduler path's cost, not theirs); the stack is
started for the scheduler path right after, so the limit is measured minutes before it. While it
is up and idle, the CPU each component takes is measured too. The sweep is polled every 5 s (a
poll costs the api-server CPU the sweep loses), and its wall does not wait for the poll. The
MLflow store exists before anything is timed, as on a machine that has run a sweep before; what
creating it costs (once per machine, in the first sweep) is measured on its own.

The sweep paths run the spec's own trials; the other paths fit exactly those estimators on exactly
those folds (mlfleet's model zoo and splitter), so every path does the same work.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

CORES = os.cpu_count() or 1


def grid_workload(data_dir: Path) -> dict[str, Any]:
    """Dunnhumby-shaped: 5 XGBoost + 5 random forests + 5 L1 logistic x 5 folds on 20,000 x 40 rows."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=20_000, n_features=40, n_informative=16, n_redundant=8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(X.shape[1])]).assign(label=y)
    path = data_dir / "grid-20000x40.parquet"
    frame.to_parquet(path, index=False)
    return {
        "name": "bench-grid", "task": "classification", "target": "label", "metric": "roc_auc",
        "dataset": {"path": str(path)}, "cv": {"folds": 5, "seed": 0}, "search": {"strategy": "grid"},
        "models": [
            {"type": "xgboost", "params": {"n_estimators": [100], "max_depth": [3, 4, 5, 6, 7], "learning_rate": [0.1]}},
            {"type": "random_forest", "params": {"n_estimators": [60], "max_depth": [4, 6, 8, 10, 12]}},
            {"type": "logistic_l1", "params": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}},
        ],
        "budget": {"max_parallel": 8, "timeout_minutes": 60},
    }


def random_workload(n_trials: int, *, name: str = "bench-random", folds: int = 2) -> dict[str, Any]:
    """Many short trials: L1 logistic on breast_cancer, random C and tol, 2 folds by default."""
    return {
        "name": name, "task": "classification", "target": "target", "metric": "roc_auc",
        "dataset": {"builtin": "breast_cancer"}, "cv": {"folds": folds, "seed": 0},
        "search": {"strategy": "random", "n_trials": n_trials},
        "models": [{"type": "logistic_l1", "params": {"C": {"float": [0.01, 100.0], "log": True},
                                                      "tol": {"float": [1e-4, 1e-2], "log": True}}}],
        "budget": {"max_parallel": 8, "timeout_minutes": 120},
    }


# --- the same fits, without mlfleet ------------------------------------------------------------


def _data(spec: dict[str, Any]) -> tuple[Any, Any, list[Any], list[dict[str, Any]]]:
    """X, y, the folds and the trials exactly as mlfleet's sweep builds them."""
    from mlfleet.config import Settings
    from mlfleet.spec import parse_spec
    from mlfleet.sweep.datasets import feature_columns, load_frame
    from mlfleet.training.cv import CVConfig
    from mlfleet.trials import expand

    parsed = parse_spec(spec)
    frame = load_frame(parsed, Settings())
    features = feature_columns(parsed, frame)
    X, y = frame[features].to_numpy(dtype="float64"), frame[parsed.target].to_numpy()
    config = CVConfig(task=parsed.task, metric=parsed.metric, folds=parsed.cv.folds, seed=parsed.cv.seed)
    return X, y, list(config.splitter().split(X, y)), [t.to_dict() for t in expand(parsed)]


def _timed_fit(trial: dict[str, Any], train: Any, test: Any, X: Any, y: Any, task: str, metric: str, seed: int) -> float:
    """Fit and score one fold; returns the CPU seconds this process spent on it (all its threads)."""
    from sklearn.metrics import get_scorer

    from mlfleet.training.zoo import build_estimator

    started = time.process_time()
    estimator = build_estimator(trial["model"], trial["params"], task=task, seed=seed, n_classes=len(set(y)))
    estimator.fit(X[train], y[train])
    get_scorer(metric)(estimator, X[test], y[test])
    return time.process_time() - started


def _warm_up(models: list[str], task: str) -> None:
    """Import and fit each model type once on a few rows, so no timed fit pays a first import."""
    import numpy as np

    from mlfleet.training.zoo import build_estimator

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 2
    for model in models:
        build_estimator(model, {}, task=task, seed=0, n_classes=2).fit(X, y)


def limit_and_joblib(spec: dict[str, Any]) -> dict[str, float]:
    """joblib over every fit; the fits' own CPU seconds give the limit.

    The pool's workers import and fit each model type once before the clock starts: a cold worker's
    first fit of a type carries that import (xgboost's is seconds), which is no fit's CPU, so it
    stays out of the limit (and out of joblib's wall, a little in joblib's favour).
    """
    from joblib import Parallel, delayed

    X, y, folds, trials = _data(spec)
    jobs = [delayed(_timed_fit)(t, train, test, X, y, spec["task"], spec["metric"], spec["cv"]["seed"])
            for t in trials for train, test in folds]
    models = sorted({t["model"] for t in trials})
    with Parallel(n_jobs=CORES) as parallel:
        parallel(delayed(_warm_up)(models, spec["task"]) for _ in range(4 * CORES))
        started = time.perf_counter()
        cpu = parallel(jobs)
        wall = time.perf_counter() - started
    return {"fits": len(jobs), "cpu_s": sum(cpu), "limit_s": sum(cpu) / CORES, "joblib_s": wall}


def gridsearch(spec: dict[str, Any]) -> float:
    """GridSearchCV(n_jobs=-1) over the same trials (one grid point each) and the same folds."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from mlfleet.training.zoo import build_estimator

    X, y, folds, trials = _data(spec)
    estimators = [build_estimator(t["model"], t["params"], task=spec["task"], seed=spec["cv"]["seed"],
                                  n_classes=len(set(y))) for t in trials]
    search = GridSearchCV(Pipeline([("model", estimators[0])]), [{"model": [e]} for e in estimators],
                          scoring=spec["metric"], cv=folds, n_jobs=-1, refit=False)
    started = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - started


# --- mlfleet ------------------------------------------------------------------------------------


def cli_sweep(spec: dict[str, Any], spec_dir: Path) -> dict[str, Any]:
    """`mlfleet sweep SPEC --json`, as a user runs it; its phases from when its progress lines came.

    The header line comes when `prepare` ends and the last "trials done" line when the last batch
    ends, so start-up (imports, validation, staging), the batches and finalize are told apart.
    """
    path = spec_dir / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    mlfleet = Path(sys.executable).parent / "mlfleet"
    out_path = spec_dir / f"{spec['name']}.json"
    marks: dict[str, float] = {}
    tail: list[str] = []
    started = time.perf_counter()
    with out_path.open("w") as out:  # a file, not a pipe: the leaderboard of 2,000 trials fills one
        proc = subprocess.Popen([str(mlfleet), "sweep", str(path), "--json"], stdout=out, stderr=subprocess.PIPE,
                                text=True, env=os.environ)
        assert proc.stderr is not None
        for line in proc.stderr:
            now = time.perf_counter() - started
            if "round(s)" in line and "prepared_s" not in marks:
                marks["prepared_s"] = now
            elif "trials done" in line:
                marks["batches_done_s"] = now
            tail = (tail + [line])[-40:]
        code = proc.wait(timeout=7200)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"mlfleet sweep exited {code}: {''.join(tail)}")
    board = json.loads(out_path.read_text())
    phases = {}
    if len(marks) == 2:
        phases = {"startup_s": marks["prepared_s"], "batches_s": marks["batches_done_s"] - marks["prepared_s"],
                  "finalize_s": wall - marks["batches_done_s"]}
    return {"wall_s": wall, "board": board, "phases": phases}


def _stamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def scheduler_sweep(api: Any, spec: dict[str, Any], *, timeout: float = 7200) -> dict[str, Any]:
    """Trigger experiment_sweep over REST; wall from the POST to the end of the sweep's last run."""
    from mlfleet.results import read_leaderboard

    started = time.time()
    run = api.trigger("experiment_sweep", {"spec": spec})
    runs, state = api.wait_for_sweep("experiment_sweep", run["dag_run_id"], timeout=timeout, interval=5.0)
    wall = _stamp(api.dag_run("experiment_sweep", runs[-1])["end_date"]).timestamp() - started
    if state != "success":
        raise RuntimeError(f"experiment_sweep run {runs[-1]} ended {state}")
    tasks: dict[str, list[float]] = {}
    waits: list[float] = []  # queued -> running: what the executor and a new task process cost before any work
    for run_id in runs:
        for ti in api.task_instances("experiment_sweep", run_id):
            queued, start, end = _stamp(ti.get("queued_when")), _stamp(ti.get("start_date")), _stamp(ti.get("end_date"))
            if start and end:
                tasks.setdefault(ti["task_id"], []).append((end - start).total_seconds())
            if queued and start:
                waits.append((start - queued).total_seconds())
    result = api.xcom("experiment_sweep", runs[-1], "end_round")
    board = read_leaderboard(Path(result["results_uri"].removeprefix("file://")))
    return {"wall_s": wall, "runs": len(runs), "tasks": tasks, "board": board,
            "queued_to_start_s": statistics.median(waits) if waits else None,
            "results_dir": result["results_uri"].removeprefix("file://")}


def prediction_error(results_dir: Path, board: dict[str, Any]) -> dict[str, Any] | None:
    """The planner's predicted core-seconds per trial against the measured fit seconds."""
    predicted = {}
    for path in sorted((results_dir / "rounds").glob("*.json")):
        for batch in json.loads(path.read_text()):
            for trial in batch["trials"]:
                if trial.get("predicted_seconds") is not None:
                    predicted[trial["trial_id"]] = float(trial["predicted_seconds"])
    pairs = [(predicted[r["trial_id"]], float(r["fit_seconds"])) for r in board["trials"]
             if r["trial_id"] in predicted and r.get("fit_seconds") is not None]
    if not pairs:
        return None
    errors = [abs(p - a) for p, a in pairs]
    return {"trials": len(pairs), "median_abs_error_s": statistics.median(errors),
            "within_30s": sum(e <= 30 for e in errors) / len(errors),
            "median_actual_s": statistics.median(a for _, a in pairs)}


def pruning(spec: dict[str, Any], *, settings: Any) -> dict[str, Any]:
    """The same sweep with and without `search.prune`: fits run, fit seconds, best trial."""
    from mlfleet.sweep import run_sweep

    out = {}
    for label, search in (("full", spec["search"]), ("pruned", {**spec["search"], "prune": True})):
        board = run_sweep({**spec, "name": f"{spec['name']}-{label}", "search": search}, settings=settings)
        fits = sum(len([s for s in (r.get("fold_scores") or []) if s is not None]) for r in board["trials"])
        out[label] = {"fits": fits, "fit_seconds": sum(r.get("fit_seconds") or 0 for r in board["trials"]),
                      "best": board["best"]["trial_id"] if board["best"] else None}
    return out


def create_tracking_store() -> float:
    """Create the MLflow store in a new process, as a new machine's first sweep does; the seconds it took."""
    code = "from mlfleet.config import get_settings; from mlfleet.results.tracking import configure; configure(get_settings())"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=600, env=os.environ)
    return time.perf_counter() - started


def idle_stack_cpu(pids: dict[str, int | None], *, window_s: float, settle_s: float) -> dict[str, float]:
    """CPU-seconds a minute each component of an idle stack takes (its whole process tree), after `settle_s`.

    The settle lets the first DAG parses end, so this is what a stack left up costs, minute after
    minute.
    """
    import psutil

    def tree_cpu(pid: int | None) -> float:
        total = 0.0
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except (psutil.Error, ValueError):
            return 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
        return total

    time.sleep(settle_s)
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    time.sleep(window_s)
    return {name: (tree_cpu(pid) - before[name]) * 60 / window_s for name, pid in pids.items()}


def _scheduler_path(settings: Any, spec: dict[str, Any], *, idle_window_s: float = 0.0) -> dict[str, Any]:
    """Start `mlfleet up`, run the spec through it, stop it; with a window, the idle stack's CPU first."""
    from mlfleet.devstack import stack
    from mlfleet.devstack.rest_client import ApiClient

    info = stack.up(settings)
    try:
        with ApiClient.login(info["url"], info["username"], info["password"]) as api:
            api.wait_for_dag("experiment_sweep", timeout=180)
            api.unpause("experiment_sweep")
            idle = (idle_stack_cpu(info["pids"], window_s=idle_window_s, settle_s=35)
                    if idle_window_s else None)
            row = scheduler_sweep(api, spec)
    finally:
        stack.down(settings)
    return {**row, "idle_stack_cpu_per_min": idle, "idle_window_s": idle_window_s}


def run(*, settings: Any, workloads: list[tuple[str, dict[str, Any]]], spec_dir: Path,
        with_pruning: list[tuple[str, dict[str, Any]]] = (), gridsearch_paths: bool = True,
        idle_window_s: float = 45.0) -> dict[str, Any]:
    """Every path for every workload, then the pruning comparison.

    Per workload: the limit, joblib, GridSearchCV and `mlfleet sweep` with the stack down, then
    `mlfleet up` for the scheduler path (the first workload's also measures the idle stack).
    """
    results: dict[str, Any] = {"tracking_store_s": create_tracking_store()}
    for index, (label, spec) in enumerate(workloads):
        row: dict[str, Any] = {"spec": spec, **limit_and_joblib(spec)}
        if gridsearch_paths:
            row["gridsearch_s"] = gridsearch(spec)
        row["cli"] = cli_sweep({**spec, "name": f"{spec['name']}-cli"}, spec_dir)
        row["scheduler"] = _scheduler_path(settings, {**spec, "name": f"{spec['name']}-airflow"},
                                           idle_window_s=idle_window_s if index == 0 else 0.0)
        row["prediction"] = prediction_error(Path(row["scheduler"]["results_dir"]), row["scheduler"]["board"])
        results[label] = row
        # On stderr as soon as measured: a later failure must not lose an hour's figures.
        brief = {k: v for k, v in row.items() if k != "spec"}
        brief["scheduler"] = {k: v for k, v in row["scheduler"].items() if k != "board"}
        brief["cli"] = {"wall_s": row["cli"]["wall_s"], **row["cli"]["phases"]}
        print(json.dumps({label: brief}, default=str), file=sys.stderr, flush=True)
    results["pruning"] = {label: pruning(spec, settings=settings) for label, spec in with_pruning}
    return results
