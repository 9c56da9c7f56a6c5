"""The fit history's store: one SQLite row per finished CV fold, shared by every process of a deployment."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

SCHEMA = """
CREATE TABLE IF NOT EXISTS fits (
    experiment TEXT NOT NULL,
    run_id TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    fold INTEGER NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    n_features INTEGER NOT NULL,
    workers INTEGER NOT NULL,
    seconds REAL NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (experiment, run_id, trial_id, fold)
);
CREATE INDEX IF NOT EXISTS fits_by_model ON fits (model);
"""
COLUMNS = "experiment, run_id, trial_id, fold, model, params, n_rows, n_features, workers, seconds"
# What the runtime model is fitted on: (params as sorted JSON, rows, features, workers, seconds).
Sample = tuple[str, int, int, int, float]


@dataclass(frozen=True)
class FitRecord:
    """One finished CV fold: what was fitted, on how much data, with how many workers, in how long."""

    experiment: str
    run_id: str
    trial_id: str
    fold: int
    model: str
    params: dict[str, Any]
    n_rows: int
    n_features: int
    workers: int
    seconds: float


def fold_records(
    rows: Iterable[Mapping[str, Any]],
    *,
    experiment: str,
    run_id: str,
    folds: int,
    n_rows: int,
    n_features: int,
    workers: Mapping[str, int],
    default_workers: int = 1,
) -> list[FitRecord]:
    """The fold records of a sweep's successful trial rows (failed trials' times say nothing).

    A row's `fold_seconds` (one per fold) is used when present, else its `fit_seconds` spread
    evenly over `folds`; `workers` maps trial ids to the cores their batch ran on.
    """
    records = []
    for row in rows:
        if row.get("status", "success") != "success":
            continue
        per_fold = row.get("fold_seconds")
        if not isinstance(per_fold, list) or not per_fold:
            total = row.get("fit_seconds")
            if not isinstance(total, (int, float)) or folds < 1:
                continue
            per_fold = [total / folds] * folds
        for fold, seconds in enumerate(per_fold):
            if isinstance(seconds, (int, float)) and seconds > 0:
                records.append(FitRecord(
                    experiment=experiment, run_id=run_id, trial_id=row["trial_id"], fold=fold,
                    model=row["model"], params=dict(row.get("params") or {}), n_rows=int(n_rows),
                    n_features=int(n_features), workers=int(workers.get(row["trial_id"], default_workers)),
                    seconds=float(seconds),
                ))
    return records


def params_text(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


class FitHistory:
    """The store: one row per (experiment, sweep run, trial, fold); recording twice adds nothing.

    SQLite in WAL mode with a busy timeout, so several finalize and propose tasks may record
    at once while others read.
    """

    def __init__(self, path: Path | str, *, timeout_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_seconds = timeout_seconds

    def _connect(self) -> sqlite3.Connection:
        import tenacity

        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.timeout_seconds)
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked"
        # at once (no busy timeout) while another process does the same: retry for a while.
        for attempt in tenacity.Retrying(retry=tenacity.retry_if_exception_type(sqlite3.OperationalError),
                                         stop=tenacity.stop_after_delay(self.timeout_seconds),
                                         wait=tenacity.wait_random(0.01, 0.1), reraise=True):
            with attempt:
                if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
        return connection

    def record(self, records: Iterable[FitRecord]) -> int:
        """Add the records not yet stored; returns how many were new."""
        values = [(r.experiment, r.run_id, r.trial_id, r.fold, r.model, params_text(r.params),
                   r.n_rows, r.n_features, r.workers, r.seconds, time.time()) for r in records]
        if not values:
            return 0
        connection = self._connect()
        try:
            before = connection.total_changes
            with connection:
                connection.executemany(f"INSERT OR IGNORE INTO fits ({COLUMNS}, recorded_at) "
                                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            return connection.total_changes - before
        finally:
            connection.close()

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.path.is_file():
            return []
        connection = sqlite3.connect(self.path, timeout=self.timeout_seconds)
        try:
            return connection.execute(sql, parameters).fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return []
            raise
        finally:
            connection.close()

    def count(self) -> int:
        rows = self._query("SELECT COUNT(*) FROM fits")
        return int(rows[0][0]) if rows else 0

    def records(self, *, model: str | None = None, limit: int | None = None) -> list[FitRecord]:
        """Stored records, newest first; of one model type when `model` is given."""
        parameters: list[Any] = []
        sql = f"SELECT {COLUMNS} FROM fits"
        if model is not None:
            sql += " WHERE model = ?"
            parameters.append(model)
        sql += " ORDER BY rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(int(limit))
        return [FitRecord(experiment=e, run_id=r, trial_id=t, fold=f, model=m, params=json.loads(p), n_rows=n,
                          n_features=k, workers=w, seconds=s)
                for e, r, t, f, m, p, n, k, w, s in self._query(sql, parameters)]

    def samples(self, *, model: str, limit: int) -> list[Sample]:
        """The newest `limit` folds of a model type as the runtime model reads them (params as JSON text)."""
        return self._query("SELECT params, n_rows, n_features, workers, seconds FROM fits WHERE model = ? "
                           "ORDER BY rowid DESC LIMIT ?", [model, int(limit)])  # type: ignore[return-value]

    def models(self) -> list[str]:
        return [row[0] for row in self._query("SELECT DISTINCT model FROM fits ORDER BY model")]
