"""What a sweep has done so far, read from its results directory (the results UI's one source).

Read-only. A finished sweep answers from its leaderboard; a running one from its round files and
the trials' checkpoints, so the figures move while the batches run. Every name that comes from a
URL goes through `run_path`, which refuses anything that could leave the experiments root. The
root is a local folder or, with sweep_state=object_store, a path in the object store.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlfleet.storage import as_path, forget_listings, is_object_path, write_json_atomic
from mlfleet.sweep.context import CONTEXT_FILE
from mlfleet.sweep.rounds import continuation_run_id
from mlfleet.sweep.tokens import MissingToken, round_run_id
from mlfleet.trials import space_notice

AIRFLOW_RUN_FILE = "airflow_run.json"  # which Airflow run started the sweep (dag_id, run_id)
LEADERBOARD_FILE = "leaderboard.json"
DECISION_FILE = "decision.json"
# Experiment names and run ids as mlfleet writes them; anything else is not ours to open.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# `<experiment>__<sweep run id>__round_NNNN__<tag>` (tokens.round_run_id; no tag before 2026-12-07);
# a sweep run id is `run_id_from_airflow`'s: up to 15 of [0-9T] (or "run"), a dash, 16 hex digits
# (4 before 2026-12).
_CONTINUATION = re.compile(
    r"(?P<experiment>.+)__(?P<run>(?:[0-9T]{1,15}|run)-(?:[0-9a-f]{16}|[0-9a-f]{4}))__round_(?P<round>\d{4})"
    r"(?:__(?P<tag>[0-9a-f]{16}))?")


class NotFound(LookupError):
    """No such sweep, trial or report (also for names that could never be one)."""


def safe_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise NotFound(f"no {what} named {value!r}")
    return value


def run_path(root: Any, experiment: str, run_id: str) -> Any:
    """The results directory of one sweep, which must exist and lie inside `root`.

    An object-store key has no symlinks to resolve: there the names' pattern (no `/`, no `..`)
    is what keeps the path inside the root.
    """
    root = as_path(root)
    path = root / safe_name(experiment, "experiment") / safe_name(run_id, "run")
    if is_object_path(root):
        forget_listings(root)
        resolved, inside = path, True
    else:
        resolved = path.resolve()
        inside = root.resolve() in resolved.parents
    if not inside or not (resolved / CONTEXT_FILE).is_file():
        raise NotFound(f"no sweep {experiment}/{run_id}")
    return resolved


def record_airflow_run(results_path: Any, *, dag_id: str, run_id: str) -> None:
    """Note the Airflow run that started this sweep (round 0), for links back from the results."""
    path = as_path(results_path) / AIRFLOW_RUN_FILE
    if not path.exists():
        write_json_atomic(path, {"dag_id": dag_id, "run_id": run_id})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def airflow_runs(path: Path) -> list[str]:
    """The Airflow run id of each round, round 0 first (only round 0's when rounds are unknown)."""
    context = _read_json(path / CONTEXT_FILE) or {}
    first = (_read_json(path / AIRFLOW_RUN_FILE) or {}).get("run_id")
    rounds = int(context.get("rounds") or 1)
    later = [_round_run_id(path, context.get("experiment", ""), context.get("run_id", ""), k) for k in range(1, rounds)]
    return [first, *later] if first else []


def _round_run_id(path: Path, experiment: str, run_id: str, round_index: int) -> str:
    """Round `round_index`'s Airflow run id; a sweep prepared before run ids were tagged has the untagged one."""
    try:
        return round_run_id(path, experiment=experiment, run_id=run_id, round_index=round_index)
    except MissingToken:
        return continuation_run_id(experiment, run_id, round_index)


def find_airflow_run(root: Any, dag_id: str, airflow_run_id: str) -> Any:
    """The sweep an Airflow run belongs to: its own (round 0), or the one a continuation run continues."""
    match = _CONTINUATION.fullmatch(airflow_run_id)
    if match:
        try:
            path = run_path(root, match["experiment"], match["run"])
        except NotFound:
            return None
        # Only the sweep's own round run (a run id anyone made up with its name is not one of its runs).
        return path if airflow_run_id == _round_run_id(path, match["experiment"], match["run"], int(match["round"])) else None
    from mlfleet.sweep.ids import run_id_from_airflow

    run = run_id_from_airflow(airflow_run_id)
    root = as_path(root)
    forget_listings(root)
    for candidate in sorted(root.glob(f"*/{run}/{AIRFLOW_RUN_FILE}"), key=str):
        recorded = _read_json(candidate) or {}
        if recorded.get("dag_id") == dag_id and recorded.get("run_id") == airflow_run_id:
            return candidate.parent if is_object_path(candidate) else candidate.parent.resolve()
    return None


@dataclass(frozen=True)
class SweepSummary:
    """One row of the experiments list, and the head of a run's page."""

    experiment: str
    run_id: str
    kind: str  # "sweep" or "retrain"
    state: str  # "finished" or "running"
    started: str
    strategy: str
    metric: str
    trials_done: int
    trials_failed: int
    trials_total: int
    best: dict[str, Any] | None
    dag_id: str
    airflow_run_id: str | None
    registered_model: dict[str, Any] | None
    decision: dict[str, Any] | None
    # Why fewer trials run than n_trials asked (the space is smaller; `trials.space_notice`), else None.
    notice: str | None = None


def _started(path: Path) -> str:
    stamp = (path / CONTEXT_FILE).stat().st_mtime
    return datetime.fromtimestamp(stamp, timezone.utc).replace(microsecond=0).isoformat()


def dag_of(path: Path) -> str:
    """The DAG whose runs a sweep belongs to (what decides who may read it), from two small files."""
    recorded = (_read_json(path / AIRFLOW_RUN_FILE) or {}).get("dag_id")
    return str(recorded or ("retrain" if (_read_json(path / CONTEXT_FILE) or {}).get("retraining") else "experiment_sweep"))


def summary(path: Path, rows: list[dict[str, Any]] | None = None, board: dict[str, Any] | None = None) -> SweepSummary:
    """The sweep's head; pass `trial_rows(path)`'s result when the caller has read it already."""
    if rows is None:
        rows, board = trial_rows(path)
    context = _read_json(path / CONTEXT_FILE) or {}
    spec = context.get("spec") or {}
    finished = [r for r in rows if r.get("status") in ("success", "failed")]
    ok = [r for r in finished if r.get("status") == "success" and isinstance(r.get("mean_score"), (int, float))]
    best = board["best"] if board else (max(ok, key=lambda r: r["mean_score"]) if ok else None)
    runs = airflow_runs(path)
    search = spec.get("search") or {}
    notice = space_notice(strategy=str(search.get("strategy", "grid")), asked=search.get("n_trials"),
                          running=int(context.get("n_trials") or 0)) if context.get("n_trials") else None
    return SweepSummary(
        experiment=str(context.get("experiment", path.parent.name)), run_id=str(context.get("run_id", path.name)),
        kind="retrain" if context.get("retraining") else "sweep", state="finished" if board else "running",
        started=_started(path),
        strategy=str(search.get("strategy", "grid")), metric=str(spec.get("metric", "")),
        trials_done=len(finished), trials_failed=len(finished) - len(ok),
        trials_total=max(int(context.get("n_trials") or 0), len(rows)),
        best={k: best.get(k) for k in ("trial_id", "model", "params", "mean_score")} if best else None,
        dag_id=dag_of(path), airflow_run_id=runs[0] if runs else None,
        registered_model=(board or {}).get("registered_model"), decision=_read_json(path / DECISION_FILE),
        notice=notice,
    )


# A finished sweep's head, kept while the files it was read from are unchanged: the experiments
# list would otherwise parse every leaderboard on each request, seconds for a hundred large
# sweeps against milliseconds cached (docs/design-figures.md, "Why the settings").
_HEAD_FILES = (CONTEXT_FILE, LEADERBOARD_FILE, DECISION_FILE, AIRFLOW_RUN_FILE)


def _stamp(path: Any) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return getattr(stat, "st_mtime_ns", None) or stat.st_mtime, stat.st_size


@functools.lru_cache(maxsize=4096)
def _finished_head(path: Path, stamps: tuple[Any, ...]) -> SweepSummary:
    """`summary(path)`, once per state of its head files (`stamps` is the cache key)."""
    return summary(path)


def _head(path: Path) -> SweepSummary:
    stamps = tuple(_stamp(path / name) for name in _HEAD_FILES)
    if stamps[1] is None:  # running (no leaderboard yet): its checkpoints move, read it afresh
        return summary(path)
    return _finished_head(path, stamps)


def list_sweeps(root: Any) -> list[SweepSummary]:
    """Every sweep under the experiments root (a local folder or an object-store path), newest first."""
    root = as_path(root)
    forget_listings(root)
    paths = [p.parent for p in root.glob(f"*/*/{CONTEXT_FILE}")]
    return sorted((_head(p) for p in paths), key=lambda s: (s.started, s.run_id), reverse=True)


def _planned(path: Path) -> list[dict[str, Any]]:
    """Every proposed trial with where it runs: round, batch, map index (the run_batch task instance)."""
    planned = []
    for round_file in sorted((path / "rounds").glob("*.json"), key=str):
        for map_index, batch in enumerate(_read_json(round_file) or []):
            for trial in batch.get("trials", []):
                planned.append({**trial, "round": int(round_file.stem), "batch_id": batch.get("batch_id"),
                                "map_index": map_index})
    return planned


def _finished_rows(path: Path, batch_id: str) -> dict[str, dict[str, Any]]:
    batch = path / "batches" / batch_id
    results = _read_json(batch / "model" / "results.json")
    if isinstance(results, list):
        return {r["trial_id"]: r for r in results}
    return {p.stem: row for p in (batch / "checkpoints").glob("*.json") if (row := _read_json(p))}


def trial_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(every trial, planned or done, with its round and batch; the leaderboard once finalized).

    A trial that has not finished yet has status "pending". Done trials come from the leaderboard
    when there is one (its order and statuses), else from the batches' results and checkpoints.
    """
    board = _read_json(path / LEADERBOARD_FILE)
    planned = _planned(path)
    where = {t["trial_id"]: t for t in planned}
    if board:
        done = {r["trial_id"]: r for r in board.get("trials", [])}
    else:
        done = {}
        for batch_id in dict.fromkeys(t["batch_id"] for t in planned if t.get("batch_id")):
            done.update(_finished_rows(path, batch_id))
    rows = []
    for trial_id, row in done.items():
        place = where.get(trial_id, {})
        rows.append({**row, **{k: place.get(k) for k in ("round", "batch_id", "map_index", "predicted_seconds",
                                                        "optuna_number")}})
    rows += [{**t, "status": "pending"} for t in planned if t["trial_id"] not in done]
    return rows, board


def trial(path: Path, trial_id: str) -> dict[str, Any]:
    """One trial's row, with the tail of its batch's training log."""
    rows, _ = trial_rows(path)
    row = next((r for r in rows if r.get("trial_id") == trial_id), None)
    if row is None:
        raise NotFound(f"no trial {trial_id!r} in this sweep")
    log = path / "batches" / str(row.get("batch_id")) / "output" / "train.log" if row.get("batch_id") else None
    return {**row, "log_tail": log_tail(log, trial_id) if log else []}


def log_tail(log: Path, trial_id: str, *, lines: int = 40) -> list[str]:
    """The batch log's lines about this trial, and the last lines of a traceback that names it."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    mine = [line for line in text if trial_id in line]
    return (mine or text)[-lines:]
