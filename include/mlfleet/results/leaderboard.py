"""The leaderboard: trial result rows -> the JSON/CSV contract of experiment-spec.md ("Results").

Only the standard library here, so building and reading a leaderboard stays cheap in any task.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from mlfleet.storage import as_path, write_json_atomic, write_text_atomic

JSON_NAME = "leaderboard.json"
CSV_NAME = "leaderboard.csv"
SCORE_KEYS = ("fold_scores", "mean_score", "std_score")


def _succeeded(row: dict[str, Any]) -> bool:
    score = row.get("mean_score")
    return row.get("status") == "success" and isinstance(score, (int, float)) and math.isfinite(score)


def build_leaderboard(
    *, experiment: str, run_id: str, metric: str, results_uri: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Sort best first (higher mean_score wins, ties by trial_id); failed trials last with null scores."""
    ok = sorted((r for r in rows if _succeeded(r)), key=lambda r: (-float(r["mean_score"]), r["trial_id"]))
    # A "success" without a finite score cannot be ranked: it is reported as failed, never dropped.
    bad = sorted((r for r in rows if not _succeeded(r)), key=lambda r: r["trial_id"])
    trials = [dict(r) for r in ok]
    for row in bad:
        error = row.get("error") or ("no finite mean_score" if row.get("status") == "success" else "failed")
        trials.append({**row, **dict.fromkeys(SCORE_KEYS), "status": "failed", "error": error})
    best = trials[0] if ok else None
    return {
        "experiment": experiment,
        "run_id": run_id,
        "metric": metric,
        "results_uri": results_uri,
        "best": {k: best[k] for k in ("trial_id", "model", "params", "mean_score")} if best else None,
        "trials": trials,
        "n_trials": len(trials),
        "n_failed": len(bad),
    }


# A text cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (OWASP's "CSV injection"): such a cell gets a leading apostrophe, which the spreadsheet shows as
# text. Only text: a negative score is a number and stays one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return _text(value) if isinstance(value, str) else value


def to_csv(leaderboard: dict[str, Any]) -> str:
    """One row per trial; `param.<name>` columns over the union of every trial's params.

    Text cells that a spreadsheet would run as a formula are defused (`FORMULA_STARTS`).
    """
    trials = leaderboard["trials"]
    n_folds = max((len(t.get("fold_scores") or []) for t in trials), default=0)
    names = sorted({name for t in trials for name in (t.get("params") or {})})
    header = ["rank", "trial_id", "model", "status", "mean_score", "std_score", "fit_seconds",
              *(f"fold_{k}" for k in range(1, n_folds + 1)), "params", "error", *(f"param.{n}" for n in names)]
    buffer = io.StringIO()
    # RFC 4180 line ends: the writer then quotes a cell holding a bare CR too, which "\n" would leave bare.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    rank = 0
    for trial in trials:
        ranked = trial.get("status") == "success"
        rank += ranked
        folds = list(trial.get("fold_scores") or [])
        params = trial.get("params") or {}
        writer.writerow([
            rank if ranked else "", _cell(trial["trial_id"]), _cell(trial.get("model")), _cell(trial.get("status")),
            *(_cell(trial.get(k)) for k in ("mean_score", "std_score", "fit_seconds")),
            *(_cell(v) for v in folds + [None] * (n_folds - len(folds))),
            json.dumps(params, sort_keys=True, default=str), _cell(trial.get("error")),
            *(_cell(params.get(n)) for n in names),
        ])
    return buffer.getvalue()


def write_leaderboard(directory: Any, leaderboard: dict[str, Any]) -> dict[str, Any]:
    """Write leaderboard.json and leaderboard.csv into `directory` (local, or a path in the object
    store); returns {"json": path, "csv": path}."""
    directory = as_path(directory)
    json_path = directory / JSON_NAME
    write_json_atomic(json_path, leaderboard)
    csv_path = write_text_atomic(directory / CSV_NAME, to_csv(leaderboard))
    return {"json": json_path, "csv": csv_path}


def read_leaderboard(directory: Any) -> dict[str, Any]:
    return json.loads((as_path(directory) / JSON_NAME).read_text())
