"""Run every mlfleet benchmark once and write docs/benchmarks.md (`make bench`).

Every figure in the written page is measured by this run on this machine; nothing is typed in.
All state (MLFLEET_HOME, AIRFLOW_HOME, a private bytecode cache) lives in a temp dir that is
removed afterwards; nothing is written outside it but docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
LARGE_DOC = ROOT / "docs" / "benchmarks-large.md"
# `make bench` measures every section and rewrites DOC. BENCH_ONLY=<keys> (comma-separated, e.g.
# sweeps) measures only those and prints them, leaving the page alone: for iterating on one part.


def _isolate(tmp: Path) -> None:
    """Point every piece of state at `tmp`, before mlfleet or Airflow read their settings.

    Bytecode goes to a private cache (PYTHONPYCACHEPREFIX) even where PYTHONDONTWRITEBYTECODE is
    set, so the timings show a deployed installation (compiled .pyc) rather than one that recompiles
    every library in every new process; the cost of the latter is measured on its own (start-up).
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(tmp / "pycache")
    os.environ.update({
        "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
        "MLFLEET_HOME": str(tmp / "home"),
        "MLFLEET_DATA_ROOTS": str(tmp),  # the workloads' datasets are written beside the home
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp / 'airflow' / 'airflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    })
    (tmp / "airflow").mkdir(parents=True, exist_ok=True)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[str]], *, text_columns: int = 1) -> str:
    """A GitHub-flavoured Markdown table: the first `text_columns` left-aligned, the rest right-aligned."""
    align = ["---" if i < text_columns else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def batching_section(result: dict[str, Any]) -> str:
    a, b = result["per_trial"], result["planned"]
    rows = []
    for label, r in (("(a) one batch per trial", a), ("(b) planned batches (`propose`)", b)):
        rows.append([label, str(r["batches"]), f"{r['trials']} ({r['failed']} failed)", f"{r['wall_s']:.2f}",
                     f"{r['trials'] / r['wall_s']:.2f}", f"{r['wall_s'] / r['batches']:.2f}"])
    rows.append(["ratio (a)/(b)", "", "", f"**{a['wall_s'] / b['wall_s']:.1f}x**", "", ""])
    body = table(["mode", "batches (task instances)", "trials", "wall s", "trials/s", "wall s per batch"], rows)
    notes = (
        f"Spec: logistic_l1 on breast_cancer, 12 C x 2 tol = 24 trials, 3 folds, roc_auc; local backend, "
        f"{result['workers']} worker(s) per batch, `batch_target_seconds` = {result['target_seconds']:g}. "
        f"Wall time covers building the batches and running them one after another with `run_batch` "
        f"(each batch is its own `python -m mlfleet.training.entrypoint` process); `prepare` "
        f"({result['prepare_s']:.2f} s per experiment) is excluded. Both modes gave "
        f"{'identical' if result['identical_scores'] else 'DIFFERENT'} per-trial scores. Airflow's own "
        f"per-task-instance cost (scheduling, task start-up) is not included and comes on top of every (a) batch."
    )
    return f"{body}\n\n{notes}"


def startup_section(r: dict[str, Any], *, dont_write_bytecode: bool) -> str:
    body = table(
        ["bytecode", "seconds"],
        [["as installed: existing .pyc only, none written (1 run)", f"{r['uncached_s']:.2f}"],
         ["compiled .pyc cache, warm (median of 3)", f"{r['cached_s']:.2f}"]],
    )
    env_note = ("This environment sets PYTHONDONTWRITEBYTECODE=1, so without the benchmark's own cache every new "
                "process would recompile what the installation did not ship compiled. " if dont_write_bytecode else "")
    notes = (f"Wall time of a fresh interpreter that imports what a training batch needs (`{r['imports']}`). "
             f"{env_note}Benchmarks 1, 3 and 4 run with the warm cache, as a deployed image with compiled "
             f"bytecode would (e.g. `uv pip install --compile-bytecode`, or pip's default).")
    return f"{body}\n\n{notes}"


def planner_section(rows: list[dict[str, Any]]) -> str:
    from bench_planner import (
        CORES_PER_BATCH,
        FOLDS,
        MAX_BATCHES,
        REPEATS,
        TARGET_SECONDS,
    )

    body = table(
        ["trials", "ms per call (median of 5)", "batches", "max predicted batch s", "min predicted batch s", "max/min"],
        [[f"{r['trials']:,}", f"{r['median_ms']:.1f}", str(r["batches"]), f"{r['max_s']:.1f}", f"{r['min_s']:.1f}",
          f"{r['max_s'] / r['min_s']:.3f}"] for r in rows],
    )
    notes = (f"Synthetic trials cycle through xgboost, lightgbm, random_forest, logistic_l1 and mlp (trees with "
             f"n_estimators drawn from 50-500); folds={FOLDS}, cores_per_batch={CORES_PER_BATCH}, "
             f"max_batches={MAX_BATCHES}, target_seconds={TARGET_SECONDS:g}, no history; {REPEATS} calls per size. "
             f"Predicted seconds are the planner's core-second estimates, not measured run times.")
    return f"{body}\n\n{notes}"


def folds_section(r: dict[str, Any]) -> str:
    from bench_folds import FOLDS, N_ESTIMATORS, REPEATS

    body = table(
        ["workers", "wall s (median)", "wall s (best)", "speed-up vs workers=1 (median / best)"],
        [["1", f"{r['serial_s']:.2f}", f"{r['serial_min_s']:.2f}", "1.00x / 1.00x"],
         ["2, warm pool", f"{r['parallel_s']:.2f}", f"{r['parallel_min_s']:.2f}",
          f"**{r['serial_s'] / r['parallel_s']:.2f}x** / {r['serial_min_s'] / r['parallel_min_s']:.2f}x"],
         ["2, cold pool (first call in the process, 1 run)", f"{r['parallel_cold_s']:.2f}", "",
          f"{r['serial_s'] / r['parallel_cold_s']:.2f}x (vs median)"]],
    )
    notes = (f"{r['trials']} random_forest trials (n_estimators={N_ESTIMATORS}, max_depth 2-12 and None) on breast_cancer, "
             f"{FOLDS} folds = {r['fits']} fits; {REPEATS} interleaved repeats of each warm setting. A batch's training process is new, "
             f"so its first call pays the joblib process pool's start-up (the cold row).")
    return f"{body}\n\n{notes}"


def parse_section(rows: list[dict[str, Any]]) -> str:
    body = table(
        ["DAG file", "heavy modules imported", "parse ms (median of 3)", "parse ms (max)", "Airflow import s (median)"],
        [[r["file"], ", ".join(r["heavy"]) or "none", f"{r['median_ms']:.1f}", f"{r['max_ms']:.1f}",
          f"{r['airflow_import_s']:.2f}"] for r in rows], text_columns=2,
    )
    notes = ("Each run is a fresh interpreter: import `airflow.sdk` and the `airflow.*` modules the DAG file "
             "names (what the DAG processor pre-imports; timed separately, the Airflow import column), then "
             "execute the DAG file (the parse column: mlfleet's modules and all they import). Every task "
             "process pays the parse column again.")
    return f"{body}\n\n{notes}"


def _ratio(seconds: float, limit: float) -> str:
    return f"{seconds / limit:.2f}"


# Issue 10's targets on a 2-core machine: each path's wall time as a multiple of the limit.
TARGETS = {"75-fit grid": {"cli": 1.05, "scheduler": 1.10}, "2,000 short trials": {"cli": 1.10, "scheduler": 1.25}}
OVERHEAD_TARGET = 0.10  # orchestration overhead of a one-round sweep, as a share of its trial time


def _cli_phases(r: dict[str, Any]) -> str:
    phases = r["cli"].get("phases")
    if not phases:
        return "set-up, the batches and finalize"
    return (f"start-up to the end of `prepare` {phases['startup_s']:.1f} s (imports, validation, staging); "
            f"the batch(es) {phases['batches_s']:.1f} s against joblib's {r['joblib_s']:.1f} s; finalize "
            f"{phases['finalize_s']:.1f} s (MLflow runs, plot, refit and registration of the best model)")


def targets_table(label: str, r: dict[str, Any]) -> str:
    """Each target against what this run measured, and for a miss where the time above it went."""
    wanted = TARGETS.get(label)
    if not wanted:
        return ""
    limit, sched = r["limit_s"], r["scheduler"]
    batches = sched["tasks"].get("run_batch", [])
    others = {task: sum(d) for task, d in sched["tasks"].items() if task != "run_batch"}
    rows = []
    cli_ratio = r["cli"]["wall_s"] / limit
    rows.append(["`mlfleet sweep`", f"≤ {wanted['cli']:.2f}x", f"{cli_ratio:.2f}x", "yes" if cli_ratio <= wanted["cli"] else
                 f"no: {r['cli']['wall_s'] - r['joblib_s']:.1f} s above joblib over the same fits ({_cli_phases(r)}); "
                 f"joblib itself is {r['joblib_s'] / limit:.2f}x"])
    sched_ratio = sched["wall_s"] / limit
    if sched_ratio <= wanted["scheduler"]:
        verdict = "yes"
    else:
        parts = [f"batch task(s) {sum(batches):.1f} s against joblib's {r['joblib_s']:.1f} s"]
        parts += [f"`{task}` {seconds:.1f} s" for task, seconds in sorted(others.items(), key=lambda kv: -kv[1])]
        if sched["runs"] == 1 and batches:
            between = sched["wall_s"] - max(batches) - sum(others.values())
            parts.append(f"between tasks (scheduling) {between:.1f} s")
        verdict = "no: " + "; ".join(parts)
    rows.append(["`experiment_sweep` through the scheduler", f"≤ {wanted['scheduler']:.2f}x", f"{sched_ratio:.2f}x", verdict])
    if sched["runs"] == 1 and batches:
        overhead = (sched["wall_s"] - max(batches)) / max(batches)
        rows.append(["orchestration overhead of the one-round sweep (wall minus the batch, ÷ the batch)",
                     f"< {OVERHEAD_TARGET:.0%}", f"{overhead:.0%}", "yes" if overhead < OVERHEAD_TARGET else
                     "no: the tasks and gaps named in the row above"])
    return "Targets (issue 10):\n\n" + table(["path", "target", "measured", "met"], rows, text_columns=4)


def sweeps_section(results: dict[str, Any]) -> str:
    """One table per workload (path, seconds, ratio to the limit), where the scheduler's time went,
    the planner's prediction error, and what pruning saved."""
    parts = []
    if results.get("tracking_store_s") is not None:
        parts.append(f"The MLflow store was created before anything was timed, in {results['tracking_store_s']:.1f} s "
                     "(a new process: importing MLflow and running its table migrations), as a new machine's first sweep "
                     "does once; the paths below run on a machine that has run a sweep before.")
    for label, r in results.items():
        if label in ("pruning", "tracking_store_s"):
            continue
        limit = r["limit_s"]
        rows = [["limit (CPU-s of every fit ÷ cores)", f"{limit:.1f}", "1.00"],
                [f"joblib `Parallel(n_jobs={os.cpu_count()})` over the {r['fits']} fits (stack down)", f"{r['joblib_s']:.1f}",
                 _ratio(r["joblib_s"], limit)]]
        if "gridsearch_s" in r:
            rows.append(["scikit-learn `GridSearchCV(n_jobs=-1)`, same trials and folds (stack down)", f"{r['gridsearch_s']:.1f}",
                         _ratio(r["gridsearch_s"], limit)])
        rows.append(["`mlfleet sweep` (CLI, stack down)", f"{r['cli']['wall_s']:.1f}", _ratio(r["cli"]["wall_s"], limit)])
        sched = r["scheduler"]
        rows.append([f"`experiment_sweep` on `mlfleet up`, triggered over REST ({sched['runs']} run(s))",
                     f"{sched['wall_s']:.1f}", f"**{_ratio(sched['wall_s'], limit)}**"])
        spec = r["spec"]
        trials = len(sched["board"]["trials"])
        head = (f"### {label}: {trials} trials x {spec['cv']['folds']} folds = {r['fits']} fits "
                f"({r['cpu_s']:.1f} CPU-s)")
        tasks = ", ".join(f"`{task}` {sum(d):.1f} s" + (f" ({len(d)} tasks)" if len(d) > 1 else "")
                          for task, d in sorted(sched["tasks"].items()))
        batch = sum(sched["tasks"].get("run_batch", []))
        overhead = sched["wall_s"] - batch
        notes = (f"Task durations through the scheduler (REST API): {tasks}. Orchestration overhead (wall minus "
                 f"the batch tasks' time) {overhead:.1f} s = {overhead / max(batch, 1e-9):.0%} of the batch time.")
        idle = sched.get("idle_stack_cpu_per_min")
        if idle:
            notes += (f" The idle stack, before the sweep was triggered (settled, then measured for "
                      f"{sched['idle_window_s']:.0f} s), took "
                      f"{sum(idle.values()):.1f} CPU-s a minute ("
                      + ", ".join(f"{name} {cpu:.1f}" for name, cpu in sorted(idle.items(), key=lambda kv: -kv[1]))
                      + f") of the machine's {60 * (os.cpu_count() or 1)}.")
        if sched.get("queued_to_start_s") is not None:
            notes += f" A task waits {sched['queued_to_start_s']:.1f} s (median) from queued to running."
        pred = r.get("prediction")
        if pred:
            notes += (f" Planner prediction error over {pred['trials']} trials: median absolute error "
                      f"{pred['median_abs_error_s']:.2f} s (median trial {pred['median_actual_s']:.2f} s), "
                      f"{pred['within_30s']:.0%} within ±30 s.")
        parts.append(f"{head}\n\n{table(['path', 'seconds', '÷ limit'], rows)}\n\n{notes}")
        targets = targets_table(label, r)
        if targets:
            parts.append(targets)
    if results.get("pruning"):
        rows = []
        for label, p in results["pruning"].items():
            full, pruned = p["full"], p["pruned"]
            rows.append([label, str(full["fits"]), str(pruned["fits"]), f"{full['fit_seconds']:.1f}",
                         f"{pruned['fit_seconds']:.1f}", f"{1 - pruned['fit_seconds'] / full['fit_seconds']:.0%}",
                         "yes" if full["best"] == pruned["best"] else f"no ({full['best']} vs {pruned['best']})"])
        parts.append("### Early stopping across folds (`search.prune`), `mlfleet sweep`\n\n" + table(
            ["workload", "fits (full)", "fits (pruned)", "fit s (full)", "fit s (pruned)", "compute saved",
             "same best trial"], rows))
    return "\n\n".join(parts)


def celery_section(tmp: Path, measured: dict[str, Any]) -> str:
    """The 75-fit grid through the Celery stack, as a ratio to the limit section 5 measured for it
    (measured here, with joblib, when section 5 did not run)."""
    import bench_sweeps
    import celery_sweep

    spec = bench_sweeps.grid_workload(tmp)
    limit = measured.get("sweeps", {}).get("75-fit grid", {}).get("limit_s")
    if limit is None:
        limit = bench_sweeps.limit_and_joblib(spec)["limit_s"]
    return celery_sweep.section(celery_sweep.run(spec={**spec, "name": "bench-grid-celery"}, work_dir=tmp), limit_s=limit)


def render(machine: dict[str, str], sections: dict[str, str], total_s: float) -> str:
    machine_rows = table(["", ""], [[f"**{k}**", v] for k, v in machine.items()], text_columns=2)
    return f"""# Benchmarks

Written by `benchmarks/run.py` (`make bench`); every figure below was measured by that one run on
the machine described here. Rerun it rather than editing the numbers.

What is measured, and why:

1. **Batching vs one task per trial.** Every batch is one Airflow task instance and one training
   process, and both cost start-up time no matter how short the trials are. The planner therefore
   packs short trials into few batches. This runs the same 24 short trials through the real
   sweep functions and local backend twice: once with one batch per trial (what a task-per-trial
   design would pay in process start-up alone), once with the batches `propose` plans.
2. **Planner throughput.** `plan_batches` runs inside the `propose` task for every round; it has to
   stay cheap for sweeps of thousands of trials, and its batches should be evenly loaded (max/min
   predicted batch seconds close to 1) so that no mapped task trails the others.
3. **Fold-level parallelism inside a batch.** `cross_validate_trials` runs each (trial, fold) pair
   as one job in a process pool so a batch keeps every core busy; this is the speed-up that buys.
4. **DAG parse time.** The scheduler's DAG processor re-parses every DAG file continually; DAG files
   must stay thin and free of heavy imports (STYLE.md rule 4).
5. **Whole sweeps, side by side with the limit.** The same trials through joblib, scikit-learn's
   `GridSearchCV`, `mlfleet sweep` and `experiment_sweep` on `mlfleet up`'s scheduler (triggered over
   REST, as users run it), each as a ratio to the machine's limit (every fit's CPU seconds ÷ cores),
   all in this one run; then what early stopping across folds saves. Per workload, the first four
   run with `mlfleet up` down (none of them needs Airflow, and an idle stack's CPU is the
   scheduler path's cost, not theirs); the stack is started for the scheduler path right after,
   and its idle CPU is measured once.
6. **The same grid on a distributed executor.** `experiment_sweep` on Airflow's CeleryExecutor
   (two workers with their own `MLFLEET_HOME`, Redis broker, PostgreSQL metadata, sweep state in
   the object store on a moto server: `mlfleet.devstack.celery`), triggered over REST, against the
   same limit as section 5.

Section 0 first measures how much of a new process's start-up depends on compiled bytecode (an
installation setting, not mlfleet code), so the other figures can be read against it. Other work
on the machine competes for the same cores, so each section records the 1-minute load average
at its start and end (the benchmark's own processes count towards it); read a section measured
under load well above the core count with that in mind.

## Machine

{machine_rows}

## 0. Process start-up (bytecode cache)

{sections['startup']}

## 1. Batching vs one batch per trial

{sections['batching']}

## 2. Planner throughput (`plan_batches`)

{sections['planner']}

## 3. Fold-level parallelism (`cross_validate_trials`)

{sections['folds']}

## 4. DAG parse time

{sections['parse']}

## 5. Sweeps against the machine's limit

{sections['sweeps']}

## 6. The 75-fit grid on the CeleryExecutor

{sections['celery']}

## How to reproduce

`make bench` (runs `.venv/bin/python benchmarks/run.py`). This run took {total_s:.0f} s in all.
"""


def render_large(machine: dict[str, str], sections: dict[str, str], total_s: float) -> str:
    machine_rows = table(["", ""], [[f"**{k}**", v] for k, v in machine.items()], text_columns=2)
    return f"""# Benchmarks: 10,000 trials in one sweep

Written by `benchmarks/run.py --large` (`make bench-large`); every figure below was measured by that
one run on the machine described here.

## Machine

{machine_rows}

## 10,000 short trials against the machine's limit

{sections['sweeps']}

This run took {total_s:.0f} s in all.
"""


def main() -> int:
    large = "--large" in sys.argv[1:]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mlfleet-bench-"))
    original_env = dict(os.environ)
    try:
        _isolate(tmp)
        import bench_batching
        import bench_dag_parse
        import bench_folds
        import bench_planner
        import bench_startup
        import bench_sweeps
        from bench_machine import machine_info
        from mlfleet.config import get_settings

        machine = machine_info(root=ROOT)
        load_start = os.getloadavg()[0]
        settings = get_settings()
        measured: dict[str, Any] = {}
        steps = [
            ("startup", "0/6 process start-up with and without a bytecode cache",
             lambda: startup_section(bench_startup.run(as_installed_env=original_env),
                                     dont_write_bytecode=bool(original_env.get("PYTHONDONTWRITEBYTECODE")))),
            ("batching", "1/6 batching vs one batch per trial (real local backend)",
             lambda: batching_section(bench_batching.run(settings=settings))),
            ("planner", "2/6 planner throughput", lambda: planner_section(bench_planner.run())),
            ("folds", "3/6 fold-level parallelism", lambda: folds_section(bench_folds.run())),
            ("parse", "4/6 DAG parse time", lambda: parse_section(bench_dag_parse.run(dags_dir=ROOT / "dags"))),
            ("sweeps", "5/6 sweeps against the machine's limit (joblib, GridSearchCV, mlfleet sweep, the scheduler)",
             lambda: sweeps_section(measured.setdefault("sweeps", bench_sweeps.run(
                 settings=settings, spec_dir=tmp,
                 workloads=[("75-fit grid", bench_sweeps.grid_workload(tmp)),
                            ("2,000 short trials", bench_sweeps.random_workload(2000))],
                 with_pruning=[("75-fit grid", bench_sweeps.grid_workload(tmp)),
                               ("200-trial random search, 5 folds", bench_sweeps.random_workload(200, name="bench-prune", folds=5))])))),
            ("celery", "6/6 the 75-fit grid on the CeleryExecutor (2 workers, Redis, PostgreSQL, state in the object store)",
             lambda: celery_section(tmp, measured)),
        ]
        if large:
            steps = [("sweeps", "10,000 short trials against the machine's limit",
                      lambda: sweeps_section(bench_sweeps.run(
                          settings=settings, spec_dir=tmp, gridsearch_paths=False,
                          workloads=[("10,000 short trials", bench_sweeps.random_workload(10_000))])))]
        elif os.environ.get("BENCH_ONLY"):
            wanted = set(os.environ["BENCH_ONLY"].split(","))
            steps = [step for step in steps if step[0] in wanted]
        sections: dict[str, str] = {}
        for key, title, measure in steps:
            _say(title)
            before = os.getloadavg()[0]
            text = measure()
            sections[key] = f"{text}\n\nLoad average (1 min) at this section's start / end: {before:.2f} / {os.getloadavg()[0]:.2f}."
            print(f"## {title}\n\n{sections[key]}\n", flush=True)
        machine["Load average (1 min), start / end"] = f"{load_start:.2f} / {os.getloadavg()[0]:.2f}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started
    from mlfleet.storage import write_text_atomic

    if os.environ.get("BENCH_ONLY") and not large:
        _say(f"BENCH_ONLY: printed above, {DOC.relative_to(ROOT)} left as it was ({total:.0f} s)")
        return 0
    doc, page = (LARGE_DOC, render_large(machine, sections, total)) if large else (DOC, render(machine, sections, total))
    write_text_atomic(doc, page).chmod(0o644)
    _say(f"wrote {doc.relative_to(ROOT)} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
