"""Runtime learned from history: every finished CV fold is kept, and a small model predicts from it.

The planner packs trials into batches by predicted runtime (DESIGN.md, contract 3). Fixed
per-model guesses are off by orders of magnitude once the rows or n_estimators move, so each
finished fold is recorded in one SQLite file that outlives sweeps (several processes may write it
at once), and a per-model regression of log(seconds) on log(rows), log(features), log(workers)
and the trial's params is fitted on the newest records when a round is planned.
"""

from mlfleet.fit_history._model import (
    DEFAULT_SAMPLE,
    EXTRAPOLATION,
    MAX_PARAM_COLUMNS,
    MIN_RECORDS,
    RIDGE_ALPHA,
    RuntimeModel,
    prediction_error,
)
from mlfleet.fit_history._store import FitHistory, FitRecord, Sample, fold_records

__all__ = [
    "DEFAULT_SAMPLE", "EXTRAPOLATION", "MAX_PARAM_COLUMNS", "MIN_RECORDS", "RIDGE_ALPHA",
    "FitHistory", "FitRecord", "RuntimeModel", "Sample", "fold_records", "prediction_error",
]
